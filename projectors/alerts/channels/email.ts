/**
 * E-mail channel: nodemailer over SMTP (SMTP_URL, e.g. smtp://user:pass@host:587). The delivery id is
 * the Message-ID, so a repeated send after a crash is recognisable as the same message. SMTP 4xx and
 * connection failures are retried; 5xx (mailbox or sender refused) are permanent.
 */
import nodemailer from 'nodemailer';
import { detailsOf, summaryOf, type Notice } from '../alert-rules.ts';
import { ChannelError, type Channel } from './log.ts';

/** Subject and plain-text body of one alert. */
export function emailContent(notice: Notice): { subject: string; text: string } {
  const lines = detailsOf(notice).map(([label, value]) => `${label}: ${value}`);
  return {
    subject: `[stockwire] ${summaryOf(notice)}`.slice(0, 250),
    text: `${summaryOf(notice)}\n\n${lines.join('\n')}\n\nalert key: ${notice.dedupKey}\n`,
  };
}

export function createEmailChannel(props: { smtpUrl: string; from: string; to: string[] }): Channel {
  const transport = nodemailer.createTransport(props.smtpUrl);
  return {
    name: 'email',
    async send(notice, deliveryId) {
      const { subject, text } = emailContent(notice);
      try {
        await transport.sendMail({
          from: props.from,
          to: props.to,
          subject,
          text,
          messageId: `<${deliveryId.replace(/[^A-Za-z0-9._:-]/g, '_')}@stockwire>`,
        });
      } catch (err) {
        const code = (err as { responseCode?: number }).responseCode;
        const permanent = typeof code === 'number' && code >= 500;
        throw new ChannelError('email', `SMTP send failed: ${(err as Error).message}`, { permanent, cause: err });
      }
    },
    async close() {
      transport.close();
    },
  };
}

/** Paths pino must never print: credentials and personal data. */
export const logRedaction = {
  paths: [
    'req.headers.authorization', 'headers.authorization', 'authorization', 'token',
    'customer', '*.customer', 'customer_contact', '*.customer_contact', 'email', '*.email', 'phone', '*.phone',
  ],
  censor: '[redacted]',
};

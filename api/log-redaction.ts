/** Paths pino must never print: credentials and personal data. */
export const logRedaction = {
  paths: [
    'req.headers.authorization', 'headers.authorization', 'authorization', 'token', 'req.headers["x-api-key"]', 'headers["x-api-key"]', 'key', 'secret',
    'customer', '*.customer', 'customer_contact', '*.customer_contact', 'email', '*.email', 'phone', '*.phone',
  ],
  censor: '[redacted]',
};

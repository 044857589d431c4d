/** Bearer tokens of the admission suites: two tenants (`token-a` of team-a, `token-b` of team-b) and an operator (`token-op`). */
import { createHash } from 'node:crypto';

export const sha = (s: string) => createHash('sha256').update(s).digest('hex');

/** The tokens file of two tenants and an operator; `extra` adds tenant tokens `token-<name>` of tenant `<name>`. */
export function teamTokens(...extra: string[]) {
  return {
    tokens: [
      { sha256: sha('token-a'), tenant: 'team-a', role: 'tenant' as const },
      { sha256: sha('token-b'), tenant: 'team-b', role: 'tenant' as const },
      ...extra.map((name) => ({ sha256: sha(`token-${name}`), tenant: name, role: 'tenant' as const })),
      { sha256: sha('token-op'), tenant: 'ops', role: 'operator' as const },
    ],
  };
}

/**
 * Typed configuration from environment variables: the field builders each service's config
 * module writes its schema with, the parse that stops a start on a bad value with a message
 * naming the variable, and the description docs/configuration.md is generated from.
 *
 * Each field's default is written once, in its builder call; its documentation (type,
 * default, unit, meaning) is registered beside it, so the docs cannot drift from the code.
 * A number variable set to an empty string counts as unset.
 */
import { z } from 'zod';

/** What docs/configuration.md says of one variable. */
export interface EnvFieldDoc {
  /** Kind of value, e.g. `integer`, `one of: a, b`, `comma list`. */
  type: string;
  /** The default value as written in the variable; absent: none (unset), or see `defaultText`. */
  default?: string;
  /** The default in words, when it is computed at start (the host name, a path under another variable). */
  defaultText?: string;
  /** Unit of a number, e.g. `ms`, `seconds`, `bytes`. */
  unit?: string;
  /** What the variable does: one or two sentences. */
  meaning: string;
}

/** One row of a service's configuration table. */
export interface EnvVarDoc extends EnvFieldDoc {
  /** The variable, e.g. `BATCH_PORT`. */
  name: string;
}

const fieldDocs = z.registry<EnvFieldDoc>();

/** The variables are missing or malformed; the message names each one, what it must be and what it was. */
export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(problems.length === 1 ? problems[0] : `invalid configuration:\n  ${problems.join('\n  ')}`);
    this.name = 'ConfigError';
  }
}

/** For a process main: prints the problems of a `ConfigError` (no stack) and exits 2, the code of a bad configuration. */
export function exitOnConfigError(err: ConfigError): never {
  console.error(err.message);
  return process.exit(2);
}

/** For a process main: `read()`, or exits 2 with the message when it throws a `ConfigError`. */
export function configOrExit<T>(read: () => T): T {
  try {
    return read();
  } catch (err) {
    if (err instanceof ConfigError) return exitOnConfigError(err);
    throw err;
  }
}

/** Options common to every field builder. */
interface FieldOptions {
  /** What the variable does (the table's "meaning"). */
  doc: string;
  /** How the docs state a default computed at start (host name, a path under another variable). */
  defaultText?: string;
}

/** Options of a number field. */
export interface NumberFieldOptions<D extends number | undefined> extends FieldOptions {
  /** Value when unset. @default none (undefined) */
  default?: D;
  /** Smallest value accepted. */
  min: number;
  /** Whether fractions are refused. @default true */
  int?: boolean;
  /** Unit of the value, e.g. `ms`. */
  unit?: string;
}

const blankToUndefined = (v: unknown) => (typeof v === 'string' && v.trim() === '' ? undefined : v);

/** A number variable, coerced from its text; NaN, infinities, fractions (unless `int: false`) and values under `min` are refused. */
export function envNumber<D extends number | undefined = undefined>(o: NumberFieldOptions<D>): z.ZodType<D extends number ? number : number | undefined> {
  const int = o.int ?? true;
  const error = `must be ${int ? 'an integer' : 'a number'} ≥ ${o.min}`;
  let inner: z.ZodType<number> = z.coerce.number({ error }).min(o.min, { error });
  if (int) inner = (inner as z.ZodNumber).int({ error });
  const field = z.preprocess(blankToUndefined, o.default === undefined ? inner.optional() : inner.default(o.default));
  fieldDocs.add(field, { type: int ? 'integer' : 'number', default: str(o.default), defaultText: o.defaultText, unit: o.unit, meaning: o.doc });
  return field as unknown as z.ZodType<D extends number ? number : number | undefined>;
}

/** Options of a text field. */
export interface StringFieldOptions<D extends string | undefined> extends FieldOptions {
  /** Value when unset. @default none (undefined) */
  default?: D;
  /** Kind shown in the docs. @default "string" */
  type?: string;
  /** Refuses values this returns a message for (completing "BATCH_X …"). */
  check?: (value: string) => string | undefined;
  /** Whether an empty value counts as unset (else it is a value, e.g. `BATCH_HOST=""`). @default false */
  blankIsUnset?: boolean;
}

/** A text variable (a path, a host, a name); `default` applies only when it is unset. */
export function envString<D extends string | undefined = undefined>(o: StringFieldOptions<D>): z.ZodType<D extends string ? string : string | undefined> {
  let inner: z.ZodType<string> = z.string();
  if (o.check) {
    const check = o.check;
    inner = inner.superRefine((v, ctx) => {
      const message = check(v);
      if (message) ctx.addIssue({ code: 'custom', message });
    });
  }
  const defaulted = o.default === undefined ? inner.optional() : inner.default(o.default);
  const field = o.blankIsUnset ? z.preprocess(blankToUndefined, defaulted) : defaulted;
  fieldDocs.add(field, { type: o.type ?? 'string', default: str(o.default), defaultText: o.defaultText, meaning: o.doc });
  return field as unknown as z.ZodType<D extends string ? string : string | undefined>;
}

/** One of a few words; anything else is refused, listing them. */
export function envEnum<const T extends readonly [string, ...string[]]>(values: T, o: FieldOptions & { default: T[number] }): z.ZodType<T[number]> {
  const error = `must be one of ${values.map((v) => `"${v}"`).join(', ')}`;
  const field = z.enum(values as unknown as [T[number], ...T[number][]], { error }).default(o.default as never);
  fieldDocs.add(field, { type: `one of: ${values.join(', ')}`, default: o.default, defaultText: o.defaultText, meaning: o.doc });
  return field as unknown as z.ZodType<T[number]>;
}

/** A comma-separated list; entries are trimmed and empty ones dropped. */
export function envList(o: FieldOptions & { default: string[] }): z.ZodType<string[]> {
  const split = (s: string) =>
    s
      .split(',')
      .map((e) => e.trim())
      .filter(Boolean);
  const field = z.string().default(o.default.join(',')).transform(split);
  fieldDocs.add(field, { type: 'comma list', default: o.default.join(','), defaultText: o.defaultText, meaning: o.doc });
  return field as unknown as z.ZodType<string[]>;
}

/** The variables of `schema` read from `env`, defaults for what is unset; throws `ConfigError` naming every bad one. */
export function parseEnv<S extends z.ZodObject>(schema: S, env: NodeJS.ProcessEnv): z.output<S> {
  const result = schema.safeParse(env);
  if (result.success) return result.data;
  throw new ConfigError(
    result.error.issues.map((issue) => {
      const name = String(issue.path[0]);
      return `${name} ${issue.message} (got ${JSON.stringify(env[name])})`;
    }),
  );
}

/** The documentation of each variable of `schema`, in the schema's order. */
export function describeEnv(schema: z.ZodObject): EnvVarDoc[] {
  return Object.entries(schema.shape).map(([name, field]) => {
    const doc = fieldDocs.get(field as z.ZodType);
    if (!doc) throw new Error(`${name} was not built with an env field builder (envNumber, envString, …): it has no documentation`);
    return { name, ...doc };
  });
}

function str(v: string | number | undefined): string | undefined {
  return v === undefined ? undefined : String(v);
}

import { openApiDocument } from './openapi';
import { WhyJobSchema, whyJobOf } from './rpc';
import { parseSubmit } from './schemas';
import type { JobRecord } from './model';

const submit = (topology: unknown) => parseSubmit({ command: ['train'], tasks: 4, gang: true, topology });

describe('job spec topology: one of required or preferred, a level name', () => {
  it('keeps a valid topology in the spec, and none when absent', () => {
    expect(submit({ required: 'rack' }).spec.topology).toEqual({ required: 'rack' });
    expect(submit({ preferred: 'block' }).spec.topology).toEqual({ preferred: 'block' });
    expect('topology' in parseSubmit({ command: ['x'] }).spec).toBe(false);
  });

  const bad: Array<{ name: string; topology: unknown; field: string; message: RegExp }> = [
    { name: 'neither level', topology: {}, field: 'topology', message: /set exactly one of required or preferred/ },
    { name: 'both levels', topology: { required: 'rack', preferred: 'block' }, field: 'topology', message: /set exactly one of required or preferred/ },
    { name: 'an upper-case level', topology: { required: 'Rack' }, field: 'topology.required', message: /must be a topology level name such as "rack"/ },
    { name: 'a level over 63 characters', topology: { preferred: 'r'.repeat(64) }, field: 'topology.preferred', message: /63/ },
    { name: 'an unknown field', topology: { required: 'rack', spread: true }, field: 'topology.spread', message: /./ },
    { name: 'not an object', topology: 'rack', field: 'topology', message: /./ },
  ];
  it.each(bad)('refuses $name, naming the field', ({ topology, field, message }) => {
    let caught: unknown;
    try {
      submit(topology);
    } catch (err) {
      caught = err;
    }
    expect(caught).toMatchObject({ code: 'invalid_argument', details: { field } });
    expect((caught as Error).message).toMatch(message);
  });

  it('appears in the OpenAPI document as SubmitJob.topology with its two levels', () => {
    const doc = openApiDocument() as { components: { schemas: Record<string, { properties: Record<string, { properties?: Record<string, unknown> }> }> } };
    const topology = doc.components.schemas.SubmitJob.properties.topology;
    expect(Object.keys(topology.properties ?? {}).sort()).toEqual(['preferred', 'required']);
  });

  it('travels to the scheduler in a "why" call', () => {
    const { spec } = submit({ required: 'rack' });
    const job: JobRecord = {
      id: 'j1',
      tenant: 't',
      queue: 'default',
      spec,
      phase: 'Queued',
      pending: [{ start: 0, end: 4, attempt: 1 }],
      counts: { succeeded: 0, failed: 0, cancelled: 0 },
      createdAt: 1,
    };
    const why = whyJobOf(job);
    expect(why.spec.topology).toEqual({ required: 'rack' });
    expect(WhyJobSchema.parse(why).spec.topology).toEqual({ required: 'rack' });
  });
});

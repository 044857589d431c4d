import { statusOf } from './errors';
import { openApiDocument } from './openapi';
import { WhyJobSchema, whyJobOf } from './rpc';
import { parseSubmit } from './schemas';
import { jobView } from './views';
import type { JobRecord } from './model';

const submit = (body: Record<string, unknown>) => parseSubmit({ command: ['work'], tasks: 1000, ...body });

function refusal(body: Record<string, unknown>): { code: string; status: number; field: string; message: string } {
  try {
    submit(body);
  } catch (err) {
    const e = err as { code: string; details: { field: string }; message: string };
    return { code: e.code, status: statusOf[e.code as keyof typeof statusOf], field: e.details.field, message: e.message };
  }
  throw new Error('accepted');
}

describe('job spec maxRunning: a positive whole number of tasks, optional', () => {
  it('keeps a valid limit in the spec, and none when absent (unlimited)', () => {
    expect(submit({ maxRunning: 50 }).spec.maxRunning).toBe(50);
    expect(submit({ maxRunning: 5000 }).spec.maxRunning).toBe(5000); // above tasks: harmless, never binds
    expect('maxRunning' in submit({}).spec).toBe(false);
    expect(submit({ gang: true, tasks: 4, maxRunning: 4 }).spec).toMatchObject({ gang: true, maxRunning: 4 });
  });

  it.each([
    { name: 'zero', maxRunning: 0, message: /maxRunning: .*>=1/ },
    { name: 'a negative number', maxRunning: -5, message: /maxRunning: / },
    { name: 'a fraction', maxRunning: 2.5, message: /maxRunning: .*int/i },
    { name: 'a string', maxRunning: '50', message: /maxRunning: .*number/ },
    { name: 'null', maxRunning: null, message: /maxRunning: / },
    { name: 'over MAX_TASKS', maxRunning: 10_000_001, message: /maxRunning: .*10000000/ },
  ])('refuses $name with 400 invalid_argument naming maxRunning', ({ maxRunning, message }) => {
    const r = refusal({ maxRunning });
    expect(r).toMatchObject({ code: 'invalid_argument', status: 400, field: 'maxRunning' });
    expect(r.message).toMatch(message);
  });

  it('refuses a gang whose limit is below its task count with 422 max_running_below_gang naming maxRunning', () => {
    const r = refusal({ gang: true, tasks: 8, maxRunning: 4 });
    expect(r).toEqual({
      code: 'max_running_below_gang',
      status: 422,
      field: 'maxRunning',
      message: "maxRunning: 4 is below the gang's 8 tasks, which must all start together; raise it to at least 8 or drop gang",
    });
  });

  it('appears in the OpenAPI document: SubmitJob.maxRunning (integer, 1 to 10,000,000), the job view, and the gang refusal', () => {
    const doc = openApiDocument() as {
      components: { schemas: Record<string, { properties: Record<string, Record<string, unknown>> }> };
      paths: Record<string, Record<string, { responses: Record<string, { description?: string }> }>>;
    };
    expect(doc.components.schemas.SubmitJob.properties.maxRunning).toMatchObject({ type: 'integer', minimum: 1, maximum: 10_000_000 });
    expect(doc.components.schemas.Job.properties.maxRunning).toMatchObject({ type: 'integer' });
    expect(JSON.stringify(doc.paths['/v1/jobs'].post.responses['422'])).toMatch(/max_running_below_gang/);
  });

  it('shows in the job view and travels to the scheduler in a "why" call with the counters', () => {
    const { spec } = submit({ maxRunning: 50 });
    const job: JobRecord = {
      id: 'j1',
      tenant: 't',
      queue: 'default',
      spec,
      phase: 'Running',
      pending: [{ start: 60, end: 1000, attempt: 1 }],
      counts: { succeeded: 10, failed: 0, cancelled: 0 },
      createdAt: 1,
    };
    expect(jobView(job).maxRunning).toBe(50);
    const why = WhyJobSchema.parse(whyJobOf(job));
    expect(why.spec.maxRunning).toBe(50);
    expect(why.counts).toEqual({ succeeded: 10, failed: 0, cancelled: 0 });
  });
});

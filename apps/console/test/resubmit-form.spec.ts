import { initialForm, readResubmitForm, type ResubmitForm } from '../src/resubmit-form';

const job = { queue: 'gpu', priority: 3, resources: { cpu: '1500m', memory: '4Gi', gpu: 1 } };
const form = (over: Partial<ResubmitForm>): ResubmitForm => ({ ...initialForm(job), ...over });

describe('readResubmitForm', () => {
  it('starts from the job’s own values, and sends nothing when nothing changed', () => {
    expect(initialForm(job)).toEqual({ queue: 'gpu', priority: '3', cpu: '1500m', memory: '4Gi', gpu: '1', env: '', labels: '' });
    expect(readResubmitForm(job, initialForm(job))).toEqual({ body: {} });
  });

  it.each([
    ['another queue', { queue: ' cpu ' }, { queue: 'cpu' }],
    ['a new priority', { priority: '-5' }, { priority: -5 }],
    ['only the resource changed', { cpu: '4', memory: '4Gi' }, { resources: { cpu: '4' } }],
    ['a cleared resource keeps the job’s', { gpu: '' }, {}],
    // a value may hold '=': only the first one splits
    ['variables, blank lines skipped', { env: 'LR=0.01\n\nQUERY=a=b\n' }, { env: { LR: '0.01', QUERY: 'a=b' } }],
    ['labels', { labels: 'try=2' }, { labels: { try: '2' } }],
  ])('%s', (_case, over, body) => expect(readResubmitForm(job, form(over))).toEqual({ body }));

  it.each([
    ['a priority that is no whole number', { priority: '1.5' }, 'priority'],
    ['an empty priority', { priority: ' ' }, 'priority'],
    ['a variable line without =', { env: 'LR' }, 'env'],
    ['a label line with no key', { labels: '=v' }, 'labels'],
  ])('names the field of %s', (_case, over, field) => expect(readResubmitForm(job, form(over))).toMatchObject({ field }));
});

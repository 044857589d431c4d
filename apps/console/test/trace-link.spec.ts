import { traceLink } from '../src/trace-link';

describe('traceLink', () => {
  it.each<[string, string, string | undefined]>([
    ['https://jaeger.example.com/trace/{traceId}', '4bf92f3577b34da6a3ce929d0e0e4736', 'https://jaeger.example.com/trace/4bf92f3577b34da6a3ce929d0e0e4736'],
    // every {traceId} is filled (Grafana's explore URL names it in its query)
    [
      'http://grafana:3000/explore?left={"queries":[{"query":"{traceId}"}]}&id={traceId}',
      'ab',
      'http://grafana:3000/explore?left={"queries":[{"query":"ab"}]}&id=ab',
    ],
    // the id is encoded: it cannot add to the path or the query
    ['https://t.example/{traceId}', 'a/b?c', 'https://t.example/a%2Fb%3Fc'],
    // only http(s) is linked
    ['javascript:alert({traceId})', 'ab', undefined],
    ['/relative/{traceId}', 'ab', undefined],
  ])('%s with %s: %s', (template, id, want) => {
    expect(traceLink(template, id)).toBe(want);
  });
});

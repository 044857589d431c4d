import { signInLink } from '../src/sign-in-link';

describe('signInLink', () => {
  it.each([
    ['a token alone: the jobs page', '#token=abc', { token: 'abc', page: '#/' }],
    ['a token and a workflow page', '#token=abc&to=/workflows/wf-1', { token: 'abc', page: '#/workflows/wf-1' }],
    ['an escaped token', '#token=a%2Bb%3D&to=/queues', { token: 'a+b=', page: '#/queues' }],
    ['a page that is no path of the console: the jobs page', '#token=abc&to=https://evil.example/', { token: 'abc', page: '#/' }],
    ['a protocol-relative page: the jobs page', '#token=abc&to=//evil.example', { token: 'abc', page: '#/' }],
  ])('%s', (_case, hash, link) => expect(signInLink(hash)).toEqual(link));

  it.each([['#/jobs/j-1'], ['#token='], [''], ['#to=/queues&token=abc']])('is no sign-in link: %p', (hash) => expect(signInLink(hash)).toBeUndefined());
});

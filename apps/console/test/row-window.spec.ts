import { rowWindow } from '../src/row-window';

describe('rowWindow', () => {
  it.each([
    // [case, count, bodyTop, viewport, rowPx, overscan, first, end]
    // body starts 300 px down a 900 px view: rows 0 … ⌈(900 − 300) / 50⌉ = 12 in view, + 20 → 32
    ['the top of the page', 1000, 300, 900, 50, 20, 0, 32],
    // scrolled 5,000 px past the body's top: first in view ⌊5000 / 50⌋ = 100 → 80; last ⌈5900 / 50⌉ = 118 → 138
    ['scrolled into the middle', 1000, -5000, 900, 50, 20, 80, 138],
    // past the end: ⌊60000 / 50⌋ − 20 = 1180, held to 1000 rows
    ['scrolled past the end', 1000, -60000, 900, 50, 20, 1000, 1000],
    // the body 1,100 px below the view: ⌈(900 − 2000) / 50⌉ + 20 = −2 → no row drawn
    ['a body below the view', 1000, 2000, 900, 50, 20, 0, 0],
    ['fewer rows than the view holds', 10, 0, 900, 50, 20, 0, 10],
    ['no rows', 0, 0, 900, 50, 20, 0, 0],
    ['a row height not measured yet: every row', 1000, 0, 900, 0, 20, 0, 1000],
  ])('%s', (_case, count, top, view, px, overscan, first, end) => expect(rowWindow(count, top, view, px, overscan)).toEqual({ first, end }));
});

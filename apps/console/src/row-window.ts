/**
 * Which rows of a long table to draw, pure: the rows in view and `overscan` more on each side,
 * from where the table's body starts relative to the viewport. Rows are assumed of one height
 * (the page measures its first drawn row); the rows left out are replaced by spacers of their
 * height, so the scroll bar and the position of every row stay where they would be.
 */

/** A range of rows to draw: `[first, end)`. */
export interface RowWindow {
  first: number;
  end: number;
}

/**
 * The rows of `count` to draw when the table body's top is `bodyTop` px from the viewport's top
 * (negative once scrolled past), the viewport is `viewport` px high and each row `rowPx` high.
 * @param overscan rows drawn beyond each edge of the view, so a scroll shows drawn rows. @default 20
 */
export function rowWindow(count: number, bodyTop: number, viewport: number, rowPx: number, overscan = 20): RowWindow {
  if (count <= 0 || !(rowPx > 0)) return { first: 0, end: Math.max(0, count) };
  const first = Math.min(count, Math.max(0, Math.floor(-bodyTop / rowPx) - overscan));
  const end = Math.max(first, Math.min(count, Math.ceil((viewport - bodyTop) / rowPx) + overscan));
  return { first, end };
}

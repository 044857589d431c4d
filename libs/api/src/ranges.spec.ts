import { countTasks, mergeRanges, subtractRanges, takeTasks } from './ranges';

describe('task ranges', () => {
  it('takes from the front across ranges', () => {
    // [0,3)@1 and [5,9)@2: take 5 → [0,3) + [5,7); rest [7,9)
    const { taken, rest } = takeTasks(
      [
        { start: 0, end: 3, attempt: 1 },
        { start: 5, end: 9, attempt: 2 },
      ],
      5,
    );
    expect(taken).toEqual([
      { start: 0, end: 3, attempt: 1 },
      { start: 5, end: 7, attempt: 2 },
    ]);
    expect(rest).toEqual([{ start: 7, end: 9, attempt: 2 }]);
  });

  it('merges touching ranges of the same attempt only', () => {
    expect(
      mergeRanges(
        [{ start: 0, end: 2, attempt: 1 }],
        [
          { start: 2, end: 4, attempt: 1 },
          { start: 4, end: 5, attempt: 2 },
        ],
      ),
    ).toEqual([
      { start: 0, end: 4, attempt: 1 },
      { start: 4, end: 5, attempt: 2 },
    ]);
  });

  it('subtracts ranges from the middle, keeping attempts', () => {
    // [0,10)@1 minus [2,4) and [6,7) → [0,2) [4,6) [7,10): 2 + 2 + 3 = 7 tasks
    const left = subtractRanges(
      [{ start: 0, end: 10, attempt: 1 }],
      [
        { start: 2, end: 4 },
        { start: 6, end: 7 },
      ],
    );
    expect(left).toEqual([
      { start: 0, end: 2, attempt: 1 },
      { start: 4, end: 6, attempt: 1 },
      { start: 7, end: 10, attempt: 1 },
    ]);
    expect(countTasks(left)).toBe(7);
  });
});

/**
 * The order of `npm test`: the fault suites that judge the cluster under load and time (the
 * nemesis, the fast fault scenarios, the lease under member faults) first, each in a fresh
 * worker on an idle box; then jest's own order (last run's failures, then longest first).
 * Their verdicts are about the cluster, so they run where nothing else in the test process —
 * a heap grown by earlier suites, timers an earlier suite left running — can starve their load
 * generators and samplers.
 */
'use strict';
const Sequencer = require('@jest/test-sequencer').default;

/** Suites that run first, in this order (path suffixes). */
const FIRST = ['tools/e2e/test/nemesis.spec.ts', 'tools/e2e/test/faults-fast.spec.ts', 'libs/store/test/lease-member-faults.spec.ts'];

class FaultSuitesFirst extends Sequencer {
  async sort(tests) {
    const sorted = await super.sort(tests);
    const rank = (t) => {
      const i = FIRST.findIndex((suffix) => t.path.endsWith(suffix));
      return i < 0 ? FIRST.length : i;
    };
    // Array.prototype.sort is stable: the rest keep jest's order
    return [...sorted].sort((a, b) => rank(a) - rank(b));
  }
}

module.exports = FaultSuitesFirst;
/** The fault suites (`tools/test.js` runs them alone, before the rest). */
module.exports.FAULT_SUITES = FIRST;

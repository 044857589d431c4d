// One jest run over every project; integration suites start their own etcd member.
module.exports = {
  projects: ['<rootDir>/libs/*/jest.config.js', '<rootDir>/apps/*/jest.config.js', '<rootDir>/tools/*/jest.config.js'],
  testTimeout: 60000,
  // etcd3's gRPC channels keep timers after close(); suites stop their own processes in afterAll.
  forceExit: true,
  // Suites run in a worker process that is replaced once it holds more than this after a suite,
  // never in jest's own process. Run in band (what one worker on 2 cores meant), every suite's
  // modules stayed in one heap: it passed 3 GB two thirds through, and the nemesis — whose load
  // generator and samplers run in the test process — then stalled in garbage collection for
  // seconds at a time, timing out its own requests (both replicas "not answering" while they were
  // idle; alone it passed every time). Setting this is what makes jest use a worker.
  workerIdleMemoryLimit: '1GB',
  // The fault suites in their order (tools/jest-sequencer.js); `npm test` runs them alone first (tools/test.js).
  testSequencer: '<rootDir>/tools/jest-sequencer.js',
};

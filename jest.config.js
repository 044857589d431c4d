// One jest run over every project; integration suites start their own etcd member.
module.exports = {
  projects: ['<rootDir>/libs/*/jest.config.js', '<rootDir>/apps/*/jest.config.js', '<rootDir>/tools/*/jest.config.js'],
  testTimeout: 60000,
  // etcd3's gRPC channels keep timers after close(); suites stop their own processes in afterAll.
  forceExit: true,
};

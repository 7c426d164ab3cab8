// Two projects: `unit` (pure logic, no cluster) and `integration` (a real etcd + kube-apiserver
// + kube-controller-manager, started once per run by the global setup in e2e/jest/).
const tsTransform = {
  '^.+\\.ts$': ['ts-jest', { useESM: true, tsconfig: 'tsconfig.json', diagnostics: false }],
};
const common = {
  extensionsToTreatAsEsm: ['.ts'],
  moduleNameMapper: { '^(\\.{1,2}/.*)\\.js$': '$1' },
  transform: tsTransform,
  testEnvironment: 'node',
  roots: ['<rootDir>/api', '<rootDir>/controllers', '<rootDir>/allocators', '<rootDir>/crds', '<rootDir>/e2e', '<rootDir>/cmd', '<rootDir>/testing'],
};

export default {
  projects: [
    {
      ...common,
      displayName: 'unit',
      testMatch: ['**/*.test.ts'],
      testPathIgnorePatterns: ['\\.int\\.test\\.ts$', '/node_modules/', '/dist/', '/dist-test/'],
    },
    {
      ...common,
      displayName: 'integration',
      testMatch: ['**/*.int.test.ts'],
      testPathIgnorePatterns: ['/node_modules/', '/dist/', '/dist-test/'],
      globalSetup: '<rootDir>/e2e/jest/global-setup.mjs',
      globalTeardown: '<rootDir>/e2e/jest/global-teardown.mjs',
      setupFilesAfterEnv: ['<rootDir>/e2e/jest/integration-timeout.ts'],
    },
  ],
};

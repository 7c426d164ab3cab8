// Integration tests wait on a real API server and controllers; give each test two minutes.
import { jest } from '@jest/globals';

jest.setTimeout(120_000);

import { describe, expect, it } from '@jest/globals';
import { makePod, makeService } from '../../testing/endpoint-objects.js';
import { findTargetPort, portKey, portSetKey, usableServicePorts } from './ports.js';

describe('findTargetPort', () => {
  const pod = makePod('p', 0, {
    containerPorts: [{ name: 'dns', containerPort: 53, protocol: 'UDP' }, { name: 'web', containerPort: 8080 }],
    sidecarPorts: [{ name: 'metrics', containerPort: 9100 }],
  });

  it('uses numbers as they are and defaults an absent targetPort to the port', () => {
    expect(findTargetPort(pod, { port: 80, targetPort: 8081 })).toBe(8081);
    expect(findTargetPort(pod, { port: 80 })).toBe(80);
    expect(findTargetPort(pod, { port: 80, targetPort: '8082' })).toBe(8082);
  });

  it('resolves names with the same protocol, in containers then sidecars', () => {
    expect(findTargetPort(pod, { port: 80, targetPort: 'web' })).toBe(8080);
    expect(findTargetPort(pod, { port: 53, targetPort: 'dns', protocol: 'UDP' })).toBe(53);
    expect(findTargetPort(pod, { port: 53, targetPort: 'dns', protocol: 'TCP' })).toBeUndefined();
    expect(findTargetPort(pod, { port: 91, targetPort: 'metrics' })).toBe(9100);
    expect(findTargetPort(pod, { port: 92, targetPort: 'nope' })).toBeUndefined();
  });

  it('ignores init containers that are not sidecars', () => {
    const plain = makePod('p', 0);
    plain.spec!.initContainers = [{ name: 'init', ports: [{ name: 'web', containerPort: 1 }] }];
    expect(findTargetPort(plain, { port: 80, targetPort: 'web' })).toBeUndefined();
  });
});

describe('usableServicePorts', () => {
  it('keeps valid ports and reports the others', () => {
    const service = makeService({
      ports: [
        { name: 'a', port: 1, protocol: 'TCP' },
        { name: 'a', port: 2, protocol: 'UDP' },
        { name: 'b', port: 3, protocol: 'SCTP', targetPort: '' },
        { name: 'c', port: 4.5, protocol: 'TCP' },
      ],
    });
    const { ports, skipped } = usableServicePorts(service);
    expect(ports.map((p) => p.name)).toEqual(['a']);
    expect(skipped.map((s) => [s.name, s.code])).toEqual([
      ['a', 'ServicePortCollision'],
      ['b', 'ServicePortInvalid'],
      ['c', 'ServicePortInvalid'],
    ]);
  });
});

describe('portSetKey', () => {
  it('ignores order and treats absent name/protocol as ""/TCP', () => {
    const a = [{ name: 'x', port: 1, protocol: 'TCP' }, { name: '', port: 2, protocol: 'UDP' }];
    const b = [{ port: 2, protocol: 'UDP' }, { name: 'x', port: 1 }];
    expect(portSetKey(a)).toBe(portSetKey(b));
    expect(portSetKey(null)).toBe(portSetKey([]));
    expect(portSetKey(a)).not.toBe(portSetKey([{ ...a[0], appProtocol: 'http' }, a[1]]));
  });
});

describe('portKey', () => {
  it('is the JSON of [name, port, protocol, appProtocol] with the defaults filled in, whatever the field holds', () => {
    const ports = [
      {},
      { name: 'http', port: 8080, protocol: 'TCP' },
      { name: 'dns', port: 53, protocol: 'UDP', appProtocol: 'kubernetes.io/h2c' },
      { name: 'a"b\\c', port: 1 },
      { name: 'tab\tnew\nline', port: -0 },
      { name: '\ud800lone', port: 2, appProtocol: 'x\udfff' },
      { name: 'é😀', port: 3, protocol: 'SCTP' },
      { name: 'n', port: Number.NaN },
      { name: 'n', port: Number.POSITIVE_INFINITY },
      { name: 'n', port: 1.5, appProtocol: '' },
      { name: 7, port: '80', protocol: null } as unknown as { name: string }, // what a malformed object may hold
    ];
    for (const port of ports) {
      const { name, port: number, protocol, appProtocol } = port as Record<string, unknown>;
      expect(portKey(port)).toBe(JSON.stringify([name ?? '', number ?? null, protocol ?? 'TCP', appProtocol ?? null]));
    }
    expect(portKey({ name: 'x', port: 1 })).not.toBe(portKey({ name: 'x', port: 1, appProtocol: 'null' }));
  });
});

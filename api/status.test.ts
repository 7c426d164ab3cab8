import { describe, expect, it } from '@jest/globals';
import {
  ALLOCATOR_ERRORS,
  FieldPath,
  OMITTED_VALUE,
  aggregateMessage,
  clusterIPAllocationStatus,
  duplicate,
  duplicateEntries,
  duplicateNodePortStatus,
  dynamicClusterIPStatus,
  dynamicNodePortStatus,
  errorBody,
  errorString,
  forbidden,
  goSlice,
  goString,
  goStringPointer,
  healthCheckNodePortStatus,
  internalErrorStatus,
  internalFieldError,
  invalid,
  invalidStatus,
  ipNotInRangeReason,
  kubectlErrorOutput,
  nodePortAllocationStatus,
  notSupported,
  portNotInRangeReason,
  renderValue,
  required,
  tooMany,
  unknownErrorStatus,
  webhookDenialStatus,
} from './status.js';

const NODE_PORT_0 = FieldPath.of('spec', 'ports').index(0).child('nodePort');

describe('renderValue', () => {
  it.each([
    ['a string, quoted', 'SingleStack', '"SingleStack"', '"SingleStack"'],
    ['an int, bare', 30080, '30080', '30080'],
    ['a bool, bare', true, 'true', 'true'],
    ['nil', null, 'null', 'null'],
    ['a named string', goString('core.IPFamily', 'IPv6'), '"IPv6"', '"IPv6"'],
    ['a nil pointer', goStringPointer('core.IPFamilyPolicy', undefined), 'null', 'null'],
    ['a []string', goSlice('string', ['10.96.0.50']), '["10.96.0.50"]', '[]string{"10.96.0.50"}'],
    ['a two-item []string', goSlice('string', ['10.96.0.50', '']), '["10.96.0.50",""]', '[]string{"10.96.0.50", ""}'],
    ['a named-type slice', goSlice('core.IPFamily', ['IPv6']), '["IPv6"]', '[]core.IPFamily{"IPv6"}'],
    ['an empty slice', goSlice('string', []), '[]', '[]string{}'],
    ['a nil slice', goSlice('string', undefined), 'null', '[]string(nil)'],
    ['an int slice', goSlice('int32', [1, 2]), '[1,2]', '[]int32{1, 2}'],
  ])('renders %s', (_label, value, json, goSyntax) => {
    expect(renderValue(value, 'json')).toBe(json);
    expect(renderValue(value, 'go-syntax')).toBe(goSyntax);
  });

  it('quotes strings like strconv.Quote and slices like encoding/json', () => {
    expect(renderValue('a"b\\c\n\t\x01\x7f\u00e9\u200b')).toBe('"a\\"b\\\\c\\n\\t\\x01\\x7f\u00e9\\u200b"');
    expect(renderValue('\u{1F600}\u{E0001}')).toBe('"\u{1F600}\\U000e0001"');
    expect(renderValue(goSlice('string', ['<a>&']), 'json')).toBe('["\\u003ca\\u003e\\u0026"]');
    expect(renderValue(goSlice('string', ['<a>&']), 'go-syntax')).toBe('[]string{"<a>&"}');
  });
});

describe('field errors', () => {
  it('renders paths like field.Path', () => {
    expect(NODE_PORT_0.toString()).toBe('spec.ports[0].nodePort');
    expect(FieldPath.of('metadata', 'annotations').key('example.com/x').toString()).toBe('metadata.annotations[example.com/x]');
  });

  it.each([
    [invalid(NODE_PORT_0, 80, 'too low'), 'spec.ports[0].nodePort: Invalid value: 80: too low'],
    [invalid(FieldPath.of('spec', 'clusterIPs').index(0), '10.0.0.300', 'x'), 'spec.clusterIPs[0]: Invalid value: "10.0.0.300": x'],
    [required(FieldPath.of('spec', 'clusterIPs')), 'spec.clusterIPs: Required value'],
    [required(FieldPath.of('spec', 'ports'), 'at least one'), 'spec.ports: Required value: at least one'],
    [forbidden(NODE_PORT_0, "may not be used when `type` is 'ClusterIP'"), "spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'"],
    [duplicate(NODE_PORT_0, 30080), 'spec.ports[0].nodePort: Duplicate value: 30080'],
    [duplicate(FieldPath.of('spec', 'ipFamilies').index(1), goString('core.IPFamily', 'IPv4')), 'spec.ipFamilies[1]: Duplicate value: "IPv4"'],
    [
      notSupported(FieldPath.of('spec', 'ipFamilyPolicy'), goString('core.IPFamilyPolicy', 'Foo'), ['PreferDualStack', 'RequireDualStack', 'SingleStack']),
      'spec.ipFamilyPolicy: Unsupported value: "Foo": supported values: "PreferDualStack", "RequireDualStack", "SingleStack"',
    ],
    [tooMany(FieldPath.of('spec', 'ports'), 3, 1), 'spec.ports: Too many: 3: must have at most 1 item'],
    [tooMany(FieldPath.of('spec', 'ports'), -1, -1), 'spec.ports: Too many: has too many items'],
    [internalFieldError(FieldPath.of('spec', 'clusterIPs'), 'boom'), 'spec.clusterIPs: Internal error: boom'],
  ])('renders field error %#', (error, text) => {
    expect(errorString(error)).toBe(text);
  });

  it('leaves an omitted value out', () => {
    expect(errorBody({ type: 'FieldValueInvalid', field: 'x', badValue: OMITTED_VALUE, detail: 'd' })).toBe('Invalid value: d');
  });

  it('aggregates one error bare and several in brackets, dropping repeated texts', () => {
    const a = duplicate(NODE_PORT_0, 1);
    const b = duplicate(NODE_PORT_0, 2);
    expect(aggregateMessage([a])).toBe('spec.ports[0].nodePort: Duplicate value: 1');
    expect(aggregateMessage([a, b, a])).toBe('[spec.ports[0].nodePort: Duplicate value: 1, spec.ports[0].nodePort: Duplicate value: 2]');
    expect(aggregateMessage([a, a])).toBe('spec.ports[0].nodePort: Duplicate value: 1');
  });

  it('reports the repeats of a list at their index, under a path written out or built', () => {
    const repeats = duplicateEntries(['eth0', 'eth1', 'eth0', 'eth0'], 'spec.interfaces');
    expect(repeats.map((e) => errorString(e))).toEqual(['spec.interfaces[2]: Duplicate value: "eth0"', 'spec.interfaces[3]: Duplicate value: "eth0"']);
    expect(duplicateEntries(['a', 'a'], FieldPath.of('spec', 'ipAddressPools'))).toEqual([duplicate('spec.ipAddressPools[1]', 'a')]);
    expect(duplicateEntries(undefined, 'spec.interfaces')).toEqual([]);
  });
});

describe('422 and 500 bodies (golden)', () => {
  it('matches spec §5.3 byte for byte in the go-syntax style of the releases it quotes', () => {
    const status = clusterIPAllocationStatus('web', ['10.96.0.50'], '10.96.0.50', ALLOCATOR_ERRORS.ipAlreadyAllocated, 'go-syntax');
    const body =
      '{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",' +
      '"message":"Service \\"web\\" is invalid: spec.clusterIPs: Invalid value: []string{\\"10.96.0.50\\"}: failed to allocate IP 10.96.0.50: provided IP is already allocated",' +
      '"reason":"Invalid",' +
      '"details":{"name":"web","kind":"Service","causes":[{"reason":"FieldValueInvalid",' +
      '"message":"Invalid value: []string{\\"10.96.0.50\\"}: failed to allocate IP 10.96.0.50: provided IP is already allocated",' +
      '"field":"spec.clusterIPs"}]},' +
      '"code":422}';
    expect(JSON.stringify(status)).toBe(body);
  });

  it('renders the same body as Kubernetes v1.34 does by default (slices as JSON)', () => {
    const status = clusterIPAllocationStatus('web', ['10.96.0.50'], '10.96.0.50', ALLOCATOR_ERRORS.ipAlreadyAllocated);
    expect(status.message).toBe(
      'Service "web" is invalid: spec.clusterIPs: Invalid value: ["10.96.0.50"]: failed to allocate IP 10.96.0.50: provided IP is already allocated',
    );
    expect(status.details?.causes).toEqual([
      {
        reason: 'FieldValueInvalid',
        message: 'Invalid value: ["10.96.0.50"]: failed to allocate IP 10.96.0.50: provided IP is already allocated',
        field: 'spec.clusterIPs',
      },
    ]);
  });

  it('shows the padding of a family still to be allocated in the bad value', () => {
    const status = clusterIPAllocationStatus('web', ['10.0.0.5', ''], '10.0.0.5', ALLOCATOR_ERRORS.mismatchedNetwork);
    expect(status.message).toBe(
      'Service "web" is invalid: spec.clusterIPs: Invalid value: ["10.0.0.5",""]: failed to allocate IP 10.0.0.5: the provided network does not match the current range',
    );
  });

  it('renders a nodePort 422 with the port bare', () => {
    const taken = nodePortAllocationStatus('web', 0, 30672, ALLOCATOR_ERRORS.portAlreadyAllocated);
    expect(taken.message).toBe('Service "web" is invalid: spec.ports[0].nodePort: Invalid value: 30672: provided port is already allocated');
    expect(JSON.stringify(taken)).toBe(
      '{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",' +
        '"message":"Service \\"web\\" is invalid: spec.ports[0].nodePort: Invalid value: 30672: provided port is already allocated",' +
        '"reason":"Invalid","details":{"name":"web","kind":"Service","causes":[{"reason":"FieldValueInvalid",' +
        '"message":"Invalid value: 30672: provided port is already allocated","field":"spec.ports[0].nodePort"}]},"code":422}',
    );
    const outside = nodePortAllocationStatus('web', 2, 80, portNotInRangeReason('30000-32767'));
    expect(outside.message).toBe(
      'Service "web" is invalid: spec.ports[2].nodePort: Invalid value: 80: provided port is not in the valid range. The range of valid ports is 30000-32767',
    );
  });

  it.each([
    [dynamicClusterIPStatus(ALLOCATOR_ERRORS.rangeFull), 'failed to allocate a serviceIP: range is full'],
    [dynamicNodePortStatus(ALLOCATOR_ERRORS.rangeFull), 'failed to allocate a nodePort: range is full'],
    [
      healthCheckNodePortStatus(30001, ALLOCATOR_ERRORS.portAlreadyAllocated),
      'failed to allocate requested HealthCheck NodePort 30001: provided port is already allocated',
    ],
    [healthCheckNodePortStatus(undefined, ALLOCATOR_ERRORS.rangeFull), 'failed to allocate a HealthCheck NodePort 0: range is full'],
  ])('500 InternalError: %#', (status, cause) => {
    expect(JSON.stringify(status)).toBe(
      `{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Internal error occurred: ${cause}",` +
        `"reason":"InternalError","details":{"causes":[{"message":"${cause}"}]},"code":500}`,
    );
  });

  it('renders the update path duplicate as a plain 500 Unknown', () => {
    expect(JSON.stringify(duplicateNodePortStatus('TCP', 30080))).toBe(
      '{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"duplicate nodePort: {TCP 30080}","reason":"Unknown","code":500}',
    );
  });

  it('lists several errors in the message and every one as a cause', () => {
    const errors = [
      invalid(FieldPath.of('spec', 'clusterIPs').index(0), '10.0.0.300', 'must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)'),
      invalid(FieldPath.of('spec', 'clusterIPs'), goSlice('string', ['10.0.0.300', 'a', 'b']), 'may only hold up to 2 values'),
    ];
    const status = invalidStatus('Service', 'web', errors);
    expect(status.message).toBe(
      'Service "web" is invalid: [spec.clusterIPs[0]: Invalid value: "10.0.0.300": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff), ' +
        'spec.clusterIPs: Invalid value: ["10.0.0.300","a","b"]: may only hold up to 2 values]',
    );
    expect(status.details?.causes).toHaveLength(2);
  });

  it('qualifies non-core kinds with their group and omits an empty name', () => {
    const status = invalidStatus('IPAddressPool', '', [required(FieldPath.of('spec', 'addresses'))], { group: 'switchboard.dev' });
    expect(status.message).toBe('IPAddressPool.switchboard.dev "" is invalid: spec.addresses: Required value');
    expect(status.details).toEqual({
      group: 'switchboard.dev',
      kind: 'IPAddressPool',
      causes: [{ reason: 'FieldValueRequired', message: 'Required value', field: 'spec.addresses' }],
    });
  });

  it('keeps the single-range allocator texts', () => {
    expect(ipNotInRangeReason('10.0.0.5', '10.96.0.0/12')).toBe(
      'the provided IP (10.0.0.5) is not in the valid range. The range of valid IPs is 10.96.0.0/12',
    );
    expect(unknownErrorStatus('x').code).toBe(500);
    expect(internalErrorStatus('x').reason).toBe('InternalError');
  });
});

describe('kubectl rendering (golden)', () => {
  it('prints the spec §5.4 line for one cause', () => {
    const status = nodePortAllocationStatus('web', 0, 80, portNotInRangeReason('30000-32767'));
    expect(kubectlErrorOutput(status)).toBe(
      'The Service "web" is invalid: spec.ports[0].nodePort: Invalid value: 80: provided port is not in the valid range. The range of valid ports is 30000-32767\n',
    );
  });

  it('prints the same for a webhook denial: the prefixed message is not shown', () => {
    const native = clusterIPAllocationStatus('web', ['10.96.0.50'], '10.96.0.50', ALLOCATOR_ERRORS.ipAlreadyAllocated);
    const viaWebhook = webhookDenialStatus('allocate.switchboard.dev', native);
    expect(viaWebhook.message).toBe(`admission webhook "allocate.switchboard.dev" denied the request: ${native.message}`);
    expect(viaWebhook.code).toBe(422);
    expect(kubectlErrorOutput(viaWebhook, { verb: 'creating', file: 'web.yaml' })).toBe(kubectlErrorOutput(native));
    expect(kubectlErrorOutput(native)).toBe(
      'The Service "web" is invalid: spec.clusterIPs: Invalid value: ["10.96.0.50"]: failed to allocate IP 10.96.0.50: provided IP is already allocated\n',
    );
  });

  it('puts several causes on their own lines, de-duplicated', () => {
    const a = duplicate(NODE_PORT_0, 30080);
    const b = forbidden(FieldPath.of('spec', 'ipFamilies'), 'may not be set for ExternalName services');
    expect(kubectlErrorOutput(invalidStatus('Service', 'web', [a, b, a]))).toBe(
      'The Service "web" is invalid: \n' +
        '* spec.ports[0].nodePort: Duplicate value: 30080\n' +
        '* spec.ipFamilies: Forbidden: may not be set for ExternalName services\n',
    );
  });

  it('falls back to the message for an Invalid status without details', () => {
    const bare = { ...unknownErrorStatus('something'), reason: 'Invalid', code: 422 };
    expect(kubectlErrorOutput(bare)).toBe('The request is invalid: something\n');
    expect(kubectlErrorOutput(bare, { verb: 'creating', file: 'f.yaml' })).toBe(
      'The request is invalid: error when creating "f.yaml": something\n',
    );
  });

  it('prints other errors as "Error from server (<reason>)"', () => {
    expect(kubectlErrorOutput(dynamicClusterIPStatus('range is full'), { verb: 'creating', file: 'f.yaml' })).toBe(
      'Error from server (InternalError): error when creating "f.yaml": Internal error occurred: failed to allocate a serviceIP: range is full\n',
    );
    expect(kubectlErrorOutput(duplicateNodePortStatus('TCP', 30080))).toBe(
      'Error from server (Unknown): duplicate nodePort: {TCP 30080}\n',
    );
    const noReason = { ...unknownErrorStatus('plain'), reason: undefined };
    expect(kubectlErrorOutput(noReason)).toBe('Error from server: plain\n');
  });

  it('shows the webhook prefix for a 500 denial', () => {
    const denied = webhookDenialStatus('allocate.switchboard.dev', dynamicNodePortStatus('range is full'));
    expect(kubectlErrorOutput(denied, { verb: 'creating', file: 'web.yaml' })).toBe(
      'Error from server (InternalError): error when creating "web.yaml": admission webhook "allocate.switchboard.dev" denied the request: ' +
        'Internal error occurred: failed to allocate a nodePort: range is full\n',
    );
  });
});

describe('webhookDenialStatus', () => {
  it('raises codes below 400 and explains an empty denial', () => {
    expect(webhookDenialStatus('w', { code: 200 })).toMatchObject({
      code: 400,
      status: 'Failure',
      message: 'admission webhook "w" denied the request without explanation',
    });
    expect(webhookDenialStatus('w', { reason: 'Forbidden', code: 403 }).message).toBe(
      'admission webhook "w" denied the request: Forbidden',
    );
    expect(webhookDenialStatus('w', undefined).code).toBe(400);
  });
});

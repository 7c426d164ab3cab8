import { describe, expect, it } from '@jest/globals';
import type { Service } from '../../api/wire.js';
import { allowResponse, denyResponse } from '../../api/admission.js';
import { allocationPatch, allocationResponse } from './admission.js';
import { ALLOCATOR_ERRORS, clusterIPAllocationStatus, dynamicClusterIPStatus } from '../../api/status.js';

const request: Service = {
  metadata: { name: 'web', namespace: 'default' },
  spec: {
    type: 'LoadBalancer',
    externalTrafficPolicy: 'Local',
    ports: [
      { name: 'http', port: 80, protocol: 'TCP' },
      { name: 'https', port: 443, protocol: 'TCP', nodePort: 30443 },
    ],
  },
};

const allocated: Service = {
  ...request,
  spec: {
    ...request.spec,
    clusterIP: '10.96.0.17',
    clusterIPs: ['10.96.0.17', 'fd00:10:96::101'],
    ipFamilies: ['IPv4', 'IPv6'],
    ipFamilyPolicy: 'PreferDualStack',
    healthCheckNodePort: 30100,
    ports: [
      { name: 'http', port: 80, protocol: 'TCP', nodePort: 30080 },
      { name: 'https', port: 443, protocol: 'TCP', nodePort: 30443 },
    ],
  },
};

const decode = (patch: string | undefined) => JSON.parse(Buffer.from(patch ?? '', 'base64').toString('utf8')) as unknown;

describe('allocationPatch', () => {
  it('adds every allocated field that differs, and nothing else', () => {
    expect(allocationPatch(request, allocated)).toEqual([
      { op: 'add', path: '/spec/clusterIP', value: '10.96.0.17' },
      { op: 'add', path: '/spec/clusterIPs', value: ['10.96.0.17', 'fd00:10:96::101'] },
      { op: 'add', path: '/spec/ipFamilies', value: ['IPv4', 'IPv6'] },
      { op: 'add', path: '/spec/ipFamilyPolicy', value: 'PreferDualStack' },
      { op: 'add', path: '/spec/healthCheckNodePort', value: 30100 },
      { op: 'add', path: '/spec/ports/0/nodePort', value: 30080 },
    ]);
  });

  it('is empty when nothing changed', () => {
    expect(allocationPatch(allocated, allocated)).toEqual([]);
  });

  it('replaces a present value and removes one the apiserver would clear', () => {
    const before: Service = { spec: { clusterIP: '', clusterIPs: ['10.96.0.5'] } };
    const after: Service = { spec: { clusterIP: '10.96.0.5' } };
    expect(allocationPatch(before, after)).toEqual([
      { op: 'add', path: '/spec/clusterIP', value: '10.96.0.5' },
      { op: 'remove', path: '/spec/clusterIPs' },
    ]);
  });

  it('creates spec when the request had none', () => {
    expect(allocationPatch({}, { spec: { clusterIP: '10.96.0.5' } })).toEqual([
      { op: 'add', path: '/spec', value: {} },
      { op: 'add', path: '/spec/clusterIP', value: '10.96.0.5' },
    ]);
  });
});

describe('AdmissionReview responses', () => {
  it('allows with a base64 JSONPatch', () => {
    const patch = allocationPatch(request, allocated);
    const review = allowResponse('uid-1', patch);
    expect(review).toMatchObject({
      apiVersion: 'admission.k8s.io/v1',
      kind: 'AdmissionReview',
      response: { uid: 'uid-1', allowed: true, patchType: 'JSONPatch' },
    });
    expect(decode(review.response.patch)).toEqual(patch);
  });

  it('allows without a patch when there is nothing to change, passing warnings on', () => {
    expect(allowResponse('uid-2')).toEqual({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response: { uid: 'uid-2', allowed: true } });
    expect(allowResponse('uid-2', [], ['careful']).response.warnings).toEqual(['careful']);
  });

  it('denies with the Status in the spec §6.2 shape', () => {
    const status = clusterIPAllocationStatus('web', ['10.96.0.50'], '10.96.0.50', ALLOCATOR_ERRORS.ipAlreadyAllocated);
    expect(denyResponse('uid-3', status)).toEqual({
      apiVersion: 'admission.k8s.io/v1',
      kind: 'AdmissionReview',
      response: {
        uid: 'uid-3',
        allowed: false,
        status: {
          status: 'Failure',
          message: status.message,
          reason: 'Invalid',
          details: {
            name: 'web',
            kind: 'Service',
            causes: [
              {
                reason: 'FieldValueInvalid',
                message: 'Invalid value: ["10.96.0.50"]: failed to allocate IP 10.96.0.50: provided IP is already allocated',
                field: 'spec.clusterIPs',
              },
            ],
          },
          code: 422,
        },
      },
    });
  });

  it('maps each allocation outcome to its response', () => {
    const denied = allocationResponse('u', request, { outcome: 'denied', status: dynamicClusterIPStatus('range is full'), claimed: [] });
    expect(denied.response).toMatchObject({ allowed: false, status: { code: 500, reason: 'InternalError' } });
    expect(allocationResponse('u', request, { outcome: 'passThrough', errors: [] }).response).toEqual({ uid: 'u', allowed: true });
    const done = allocationResponse('u', request, {
      outcome: 'allocated',
      service: allocated,
      claimed: [],
      release: { clusterIPs: [], nodePorts: [] },
    });
    expect(decode(done.response.patch)).toEqual(allocationPatch(request, allocated));
  });
});

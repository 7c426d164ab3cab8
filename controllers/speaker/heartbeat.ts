// PLACEHOLDER until wt-hb-ring lands: only what node-lease.ts needs.
import type { Lease } from '../../api/wire.js';
export const HEARTBEAT_ANNOTATION = 'switchboard.dev/heartbeat';
export const ANSWER_WINDOW_ANNOTATION = 'switchboard.dev/answer-window-ms';
export function answerWindowMs(lease: Lease): number | undefined {
  const ms = Number(lease.metadata?.annotations?.[ANSWER_WINDOW_ANNOTATION]);
  return Number.isInteger(ms) && ms > 0 ? ms : undefined;
}
export const DEFAULT_HEARTBEAT_PORT = 7947;
import type { Logger } from '../runtime/log.js';
export interface HeartbeatPeer { node: string; address: string; port: number; judged: boolean }
export interface HeartbeatTransport { send(datagram: Buffer, address: string, port: number): void; close(): void }
export function openUdpTransport(_a: string, _p: number, _on: (d: Buffer) => void, _log: Logger): Promise<HeartbeatTransport> { throw new Error('placeholder'); }
export function formatHeartbeatEndpoint(address: string, port: number): string { return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`; }
export function heartbeatPeers(_leases: readonly Lease[]): HeartbeatPeer[] { return []; }
export interface HeartbeatRingOptions { node: string; intervalMs: number; deadAfterMs?: number; ackTimeoutMs?: number; neighboursPerSide?: number; transport: HeartbeatTransport; now?: () => number; log: Logger; onSilent: (nodes: string[]) => void; onAckedChange: (acked: boolean) => void }
export class HeartbeatRing {
  constructor(readonly o: HeartbeatRingOptions) {}
  receive(_d: Buffer): void {}
  setPeers(_p: readonly HeartbeatPeer[]): void {}
  neighbours(): string[] { return []; }
  acked(): boolean { return true; }
  silent(): string[] { return []; }
  tick(): void {}
  start(): void {}
  stop(): void {}
}

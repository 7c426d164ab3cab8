// `switchboard speaker`: the per-node L2 announcer (ARP/NDP), run by the DaemonSet.

export async function runSpeaker(_args: string[]): Promise<number> {
  console.error('switchboard speaker: the L2 speaker is not wired yet (tracked in the L2 LoadBalancer issue).');
  return 2;
}

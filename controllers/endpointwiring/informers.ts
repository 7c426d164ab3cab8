// The informers the three endpoint controllers share, with the indexes their syncs and event handlers look up,
// and the cache queries built on them. Wiring only: the pure reconcilers never see an informer.
import { objectKey } from '../runtime/client.js';
import type { Informer } from '../runtime/informer.js';
import type { Manager } from '../runtime/manager.js';
import type { WorkQueue } from '../runtime/workqueue.js';
import { EndpointSlices, Endpoints as EndpointsResource, Nodes, Pods, Services } from '../../api/resources.js';
import { byLabel, byNamespace } from '../runtime/store.js';
import type { EndpointSlice, Endpoints, Node, Pod, Service } from '../../api/wire.js';
import { LABEL_ENDPOINTSLICE_SERVICE_NAME, LABEL_MANAGED_BY } from '../endpointutil/constants.js';
import { servicesForPod, servicesForPodUpdate } from '../endpointutil/pod-change.js';
import { serviceSelectsPod } from '../endpointutil/service.js';
import { PodSyncBatcher } from './pod-sync-batcher.js';
import { ApiServerProbe } from './api-server-probe.js';

const BY_NAMESPACE = 'namespace';
/** See queueServicesOnChange. */
export const POD_EVENT_COALESCE_MS = 10;

/**
 * The Pod as the endpoint controllers read it (the only users of the Pod cache): identity, labels, deletion, node,
 * hostname/subdomain, container ports, IPs, phase and the Ready condition. Everything else (images, env, volumes,
 * resources, container statuses, annotations, other conditions) is most of a real Pod and is dropped on arrival.
 */
export function podForEndpoints(pod: Pod): Pod {
  const { metadata, spec, status } = pod;
  const ports = (containers: NonNullable<Pod['spec']>['containers'] | undefined) =>
    (containers ?? []).filter((c) => c.ports?.length).map((c) => ({ name: c.name, ports: c.ports, restartPolicy: c.restartPolicy }));
  return {
    metadata: metadata && {
      name: metadata.name,
      namespace: metadata.namespace,
      uid: metadata.uid,
      resourceVersion: metadata.resourceVersion,
      labels: metadata.labels,
      deletionTimestamp: metadata.deletionTimestamp,
    },
    spec: spec && {
      nodeName: spec.nodeName,
      hostname: spec.hostname,
      subdomain: spec.subdomain,
      containers: ports(spec.containers),
      initContainers: spec.initContainers && ports(spec.initContainers),
    },
    status: status && {
      phase: status.phase,
      podIP: status.podIP,
      podIPs: status.podIPs,
      conditions: status.conditions?.filter((c) => c.type === 'Ready'),
    },
  };
}
/**
 * Pods filed under `namespace/key=value` for each of their labels (neither part of a valid label holds '='). A
 * sync lists its Service's pods from the smallest bucket of its selector's pairs; it used to scan the whole
 * namespace, which at 100 Services × 100 pods in one namespace was most of a sync's CPU (issue 13).
 */
const POD_BY_LABEL = 'label';
const labelIndexValue = (namespace: string, key: string, value: string) => `${namespace}/${key}=${value}`;
export function podLabelIndexValues(pod: Pod): string[] {
  const namespace = pod.metadata?.namespace ?? '';
  return Object.entries(pod.metadata?.labels ?? {}).map(([key, value]) => labelIndexValue(namespace, key, value));
}

/** Slices filed under `namespace/<kubernetes.io/service-name>`. */
const BY_SERVICE_NAME = 'service-name';

export class EndpointCaches {
  private servicesInformer?: Informer<Service>;
  private podsInformer?: Informer<Pod>;
  private nodesInformer?: Informer<Node>;
  private slicesInformer?: Informer<EndpointSlice>;
  private endpointsInformer?: Informer<Endpoints>;
  private readonly podBatchers: PodSyncBatcher[] = [];
  /** One probe for both batchers: they see the same pod events, so they ask in the same pauses and share a read. */
  private readonly idleProbe = new ApiServerProbe(() => this.manager.client.list(Pods, { ...this.scoped(), limit: 1 }, { unthrottled: true }));

  /** `namespace` restricts every namespaced informer to it (empty: the whole cluster). */
  constructor(
    private readonly manager: Manager,
    private readonly namespace = '',
  ) {}

  private scoped() {
    return this.namespace ? { namespace: this.namespace } : {};
  }

  // Informers are made on first use, so a disabled controller costs no watch.
  get services(): Informer<Service> {
    return (this.servicesInformer ??= this.manager.informer<Service>(Services, { ...this.scoped(), indexers: { [BY_NAMESPACE]: byNamespace } }));
  }

  get pods(): Informer<Pod> {
    return (this.podsInformer ??= this.manager.informer<Pod>(Pods, { ...this.scoped(), indexers: { [POD_BY_LABEL]: podLabelIndexValues }, transform: podForEndpoints }));
  }

  get nodes(): Informer<Node> {
    return (this.nodesInformer ??= this.manager.informer<Node>(Nodes));
  }

  get slices(): Informer<EndpointSlice> {
    return (this.slicesInformer ??= this.manager.informer<EndpointSlice>(EndpointSlices, {
      ...this.scoped(),
      indexers: { [BY_SERVICE_NAME]: byLabel(LABEL_ENDPOINTSLICE_SERVICE_NAME) },
    }));
  }

  get endpoints(): Informer<Endpoints> {
    return (this.endpointsInformer ??= this.manager.informer<Endpoints>(EndpointsResource, this.scoped()));
  }

  /**
   * The triggers the EndpointSlice and Endpoints controllers share: a Service event syncs that Service at once; a
   * pod event syncs the Services it concerns (upstream's change detection) through an adaptive batcher (see
   * pod-sync-batcher.ts), then after the batch period. One pod handler serves both controllers.
   */
  queueServicesOnChange(queue: WorkQueue<string>, batchPeriodMs: number): PodSyncBatcher {
    const now = (service: Service) => queue.add(objectKey(service));
    this.services.addEventHandler({ onAdd: now, onUpdate: (_, service) => now(service), onDelete: now });
    const batcher = new PodSyncBatcher((key) => queue.addAfter(key, batchPeriodMs), (key) => queue.isQueued(key), undefined, this.idleProbe);
    if (this.podBatchers.length === 0) {
      // Pod events that arrive within POD_EVENT_COALESCE_MS of the first are handed on together, so one sync sees
      // them all: two pods deleted at once become one slice write, not two ~50 ms apart (Node syncs slower than Go);
      // between two writes kube-proxy may start a sync, and then holds the second back a full --min-sync-period
      // (1 s), past a terminated pod's exit: failed requests in the traffic suite's rolling update.
      // A key once per pod event that concerns it: the batchers read a Service's bursts of changes from the repeats.
      let coalesced: string[] | undefined;
      const changed = (keys: Set<string>) => {
        if (keys.size === 0) return;
        // The batchers judge the end of the load from the events themselves, not from the coalesced hand-over.
        for (const b of this.podBatchers) b.sawPodEvent();
        if (coalesced) {
          coalesced.push(...keys);
          return;
        }
        coalesced = [...keys];
        setTimeout(() => {
          const batch = coalesced!;
          coalesced = undefined;
          for (const b of this.podBatchers) b.changed(batch);
        }, POD_EVENT_COALESCE_MS).unref();
      };
      const servicesOf = (pod: Pod) => this.servicesIn(pod.metadata?.namespace ?? '');
      this.pods.addEventHandler({
        onAdd: (pod) => changed(servicesForPod(pod, servicesOf(pod))),
        onUpdate: (old, pod) => changed(servicesForPodUpdate(old, pod, servicesOf(pod))),
        onDelete: (pod) => changed(servicesForPod(pod, servicesOf(pod))),
      });
    }
    this.podBatchers.push(batcher);
    return batcher;
  }

  servicesIn(namespace: string): Service[] {
    return this.services.store.byIndex(BY_NAMESPACE, namespace);
  }

  /** The cached pods the Service's selector matches (none for a nil selector). */
  podsOf(service: Service): Pod[] {
    const selector = service.spec?.selector;
    if (selector == null) return [];
    const namespace = service.metadata?.namespace ?? '';
    const buckets = Object.entries(selector).map(([key, value]) => labelIndexValue(namespace, key, value));
    const store = this.pods.store;
    // An empty selector (the API never sends one: Go omits an empty map) would select the whole namespace.
    if (buckets.length === 0) return store.list().filter((pod) => serviceSelectsPod(service, pod));
    const smallest = buckets.reduce((a, b) => (store.countByIndex(POD_BY_LABEL, b) < store.countByIndex(POD_BY_LABEL, a) ? b : a));
    const pods = store.byIndex(POD_BY_LABEL, smallest);
    return buckets.length === 1 ? pods : pods.filter((pod) => serviceSelectsPod(service, pod));
  }

  /** Cached slices labelled for this Service and managed by `managedBy`. */
  slicesOf(namespace: string, name: string, managedBy: string): EndpointSlice[] {
    return this.slices.store.byIndex(BY_SERVICE_NAME, `${namespace}/${name}`).filter((slice) => slice.metadata?.labels?.[LABEL_MANAGED_BY] === managedBy);
  }
}

export default async function globalTeardown() {
  await globalThis.__switchboardControlPlane?.stop();
  globalThis.__switchboardControlPlane = undefined;
}

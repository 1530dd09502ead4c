import { formatBytes } from '../progress.js';
import type { Artifact } from '../oci/image.js';
import { artifactImages, artifactRoot } from '../oci/image.js';
import { formatPlatform } from '../oci/platform.js';
import type { SinkResult } from '../oci/sink.js';

/** The machine-readable result of a build (--json): what was built and where it went. */
export function describeBuild(artifact: Artifact, sinks: SinkResult[]): Record<string, unknown> {
  const root = artifactRoot(artifact);
  return {
    digest: root.descriptor.digest,
    mediaType: root.descriptor.mediaType,
    images: artifactImages(artifact).map((image) => ({
      platform: formatPlatform(image.platform),
      digest: image.manifest.descriptor.digest,
      config: image.config.descriptor.digest,
      layers: image.layers.map((layer) => ({ digest: layer.descriptor.digest, size: layer.descriptor.size, diffId: layer.diffId })),
      compressedSize: image.layers.reduce((sum, layer) => sum + layer.descriptor.size, 0),
    })),
    outputs: sinks,
  };
}

/** The same result for a person. */
export function summarizeBuild(artifact: Artifact, sinks: SinkResult[]): string {
  const root = artifactRoot(artifact);
  const lines = [`built ${root.descriptor.digest}`];
  for (const image of artifactImages(artifact)) {
    const size = image.layers.reduce((sum, layer) => sum + layer.descriptor.size, 0);
    lines.push(`  ${formatPlatform(image.platform)}: ${image.manifest.descriptor.digest} (${image.layers.length} layers, ${formatBytes(size)} compressed)`);
  }
  for (const sink of sinks) {
    const bytes = sink.bytes !== undefined ? ` (${formatBytes(sink.bytes)})` : '';
    lines.push(`  ${sink.sink}: ${sink.written.join(', ')}${bytes}`);
  }
  return lines.join('\n');
}

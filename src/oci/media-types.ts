/** Media types of the OCI image spec and their Docker v2 schema 2 equivalents. */
export const MediaType = {
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  ociLayer: 'application/vnd.oci.image.layer.v1.tar',
  ociLayerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  dockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
  dockerLayerGzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
  dockerForeignLayerGzip: 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip',
} as const;

export type MediaTypeValue = (typeof MediaType)[keyof typeof MediaType];

export function isIndexMediaType(mediaType: string | undefined): boolean {
  return mediaType === MediaType.ociIndex || mediaType === MediaType.dockerManifestList;
}

export function isManifestMediaType(mediaType: string | undefined): boolean {
  return mediaType === MediaType.ociManifest || mediaType === MediaType.dockerManifest;
}

/** The Docker v2 equivalent of an OCI media type (for sinks and registries that need Docker types). */
export function toDockerMediaType(mediaType: string): string {
  switch (mediaType) {
    case MediaType.ociIndex:
      return MediaType.dockerManifestList;
    case MediaType.ociManifest:
      return MediaType.dockerManifest;
    case MediaType.ociConfig:
      return MediaType.dockerConfig;
    case MediaType.ociLayerGzip:
      return MediaType.dockerLayerGzip;
    default:
      return mediaType;
  }
}

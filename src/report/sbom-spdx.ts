/**
 * An SbomModel as SPDX 2.3 JSON (https://spdx.github.io/spdx-spec/v2.3/). The document DESCRIBES
 * the image (a package whose purpose is CONTAINER, checksum the manifest's); the image CONTAINS
 * every component and every layer; each layer (a package whose purpose is ARCHIVE, checksum its
 * blob's) CONTAINS the components it holds; the runtime is STATIC_LINK'ed with the libraries
 * python-build-standalone builds into it. Packages carry their purl and CPE as external
 * references, the sha256 of what they were installed from, and their licenses as declared: an
 * SPDX expression, with every name that is not an SPDX identifier as a LicenseRef- listed in
 * hasExtractedLicensingInfos. Files are not analysed (filesAnalyzed false).
 *
 * Deterministic: the namespace holds a name-based UUID of the platform manifest's digest, the
 * creation time is the build's, the order the model's.
 */
import { createHash } from 'node:crypto';
import { combinedExpression, type License } from './sbom-licenses.js';
import { imagePurl, nameBasedUuid, type SbomComponent, type SbomModel } from './sbom.js';

export const spdxMediaType = 'application/spdx+json';

/** SPDX identifiers are `SPDXRef-` + letters, digits, `.` and `-`: a readable part and a short hash keep them unique. */
function spdxId(prefix: string, text: string): string {
  const readable = text.replace(/[^A-Za-z0-9.-]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 60);
  const hash = createHash('sha256').update(text).digest('hex').slice(0, 12);
  return `SPDXRef-${prefix}-${readable}-${hash}`;
}

class LicenseRefs {
  readonly extracted = new Map<string, { licenseId: string; name: string; extractedText: string }>();

  /** A license as SPDX's licenseDeclared: an expression, names turned into LicenseRef-s. */
  declared(licenses: readonly License[]): string {
    if (licenses.length === 0) return 'NOASSERTION';
    const asExpressions = licenses.map((license): License => ('expression' in license ? license : { expression: this.ref(license.name) }));
    for (const license of asExpressions) for (const ref of (license as { expression: string }).expression.match(/LicenseRef-[A-Za-z0-9.-]+/g) ?? []) this.note(ref);
    return combinedExpression(asExpressions)!;
  }

  private ref(name: string): string {
    const id = `LicenseRef-${name.replace(/[^A-Za-z0-9.-]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 60) || 'unnamed'}`;
    if (!this.extracted.has(id)) this.extracted.set(id, { licenseId: id, name, extractedText: name });
    return id;
  }

  /** A LicenseRef- an expression already holds (public domain, from the library table) must be listed too. */
  private note(id: string): void {
    if (this.extracted.has(id)) return;
    const name = id.slice('LicenseRef-'.length).replace(/-/g, ' ');
    this.extracted.set(id, { licenseId: id, name, extractedText: name });
  }
}

function purpose(component: SbomComponent): string {
  return component.kind === 'project' || component.kind === 'runtime' ? 'APPLICATION' : 'LIBRARY';
}

export function renderSpdx(model: SbomModel): Record<string, unknown> {
  const licenses = new LicenseRefs();
  const imageId = 'SPDXRef-Image';
  const platform = [model.image.platform.os, model.image.platform.architecture, model.image.platform.variant].filter(Boolean).join('/');
  const packages: Record<string, unknown>[] = [
    {
      SPDXID: imageId,
      name: model.image.name,
      versionInfo: model.image.manifest.digest,
      downloadLocation: 'NOASSERTION',
      filesAnalyzed: false,
      checksums: [{ algorithm: 'SHA256', checksumValue: model.image.manifest.digest.slice('sha256:'.length) }],
      externalRefs: [{ referenceCategory: 'PACKAGE-MANAGER', referenceType: 'purl', referenceLocator: imagePurl(model.image) }],
      primaryPackagePurpose: 'CONTAINER',
      comment: `${platform} image, ${model.image.manifest.mediaType}`,
    },
  ];
  const relationships: Record<string, unknown>[] = [{ spdxElementId: 'SPDXRef-DOCUMENT', relationshipType: 'DESCRIBES', relatedSpdxElement: imageId }];

  const layerIds = new Map<number, string>();
  for (const layer of model.image.layers) {
    const id = `SPDXRef-Layer-${layer.index}`;
    layerIds.set(layer.index, id);
    packages.push({
      SPDXID: id,
      name: `layer ${layer.index}${layer.role ? ` (${layer.role})` : ''}`,
      versionInfo: layer.digest,
      downloadLocation: 'NOASSERTION',
      filesAnalyzed: false,
      checksums: [{ algorithm: 'SHA256', checksumValue: layer.digest.slice('sha256:'.length) }],
      primaryPackagePurpose: 'ARCHIVE',
      comment: `diff_id ${layer.diffId}`,
    });
    relationships.push({ spdxElementId: imageId, relationshipType: 'CONTAINS', relatedSpdxElement: id });
  }

  const ids = new Map(model.components.map((component) => [component.ref, spdxId(component.kind === 'runtime-library' ? 'Library' : component.kind === 'debian' ? 'Deb' : component.kind === 'runtime' ? 'Runtime' : 'Python', component.ref)]));
  for (const component of model.components) {
    const id = ids.get(component.ref)!;
    const externalRefs = [{ referenceCategory: 'PACKAGE-MANAGER', referenceType: 'purl', referenceLocator: component.purl }];
    if (component.cpe) externalRefs.push({ referenceCategory: 'SECURITY', referenceType: 'cpe23Type', referenceLocator: component.cpe });
    const annotations = [...component.properties].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([name, value]) => `${name}=${value}`);
    if (component.path) annotations.push(`path=/${component.path}`);
    const entry: Record<string, unknown> = {
      SPDXID: id,
      name: component.name,
      versionInfo: component.version,
      downloadLocation: 'NOASSERTION',
      filesAnalyzed: false,
      ...(component.sha256 ? { checksums: [{ algorithm: 'SHA256', checksumValue: component.sha256 }] } : {}),
      licenseConcluded: 'NOASSERTION',
      licenseDeclared: licenses.declared(component.licenses),
      copyrightText: 'NOASSERTION',
      externalRefs,
      primaryPackagePurpose: purpose(component),
      ...(component.description ? { description: component.description } : {}),
      // SPDX 2.3 has no properties: uvimage's facts go in the comment, one name=value a line.
      ...(annotations.length > 0 ? { comment: annotations.join('\n') } : {}),
    };
    const source = component.properties.find(([name]) => name === 'uvimage:debian:source')?.[1];
    if (source) entry.sourceInfo = `built from Debian source package ${source}`;
    packages.push(entry);
    relationships.push({ spdxElementId: imageId, relationshipType: 'CONTAINS', relatedSpdxElement: id });
    const layer = component.layer && layerIds.get(component.layer.index);
    if (layer) relationships.push({ spdxElementId: layer, relationshipType: 'CONTAINS', relatedSpdxElement: id });
    const linker = component.linkedInto && ids.get(component.linkedInto);
    if (linker) relationships.push({ spdxElementId: linker, relationshipType: 'STATIC_LINK', relatedSpdxElement: id });
  }

  const uuid = nameBasedUuid(`uvimage:spdx:${model.image.manifest.digest}`);
  const slug = `${model.image.name}-${platform}`.replace(/[^A-Za-z0-9.-]+/g, '-');
  const document: Record<string, unknown> = {
    spdxVersion: 'SPDX-2.3',
    dataLicense: 'CC0-1.0',
    SPDXID: 'SPDXRef-DOCUMENT',
    name: `${model.image.name} ${platform} ${model.image.manifest.digest}`,
    documentNamespace: `https://spdx.org/spdxdocs/uvimage-${slug}-${uuid}`,
    creationInfo: {
      created: model.created,
      creators: [`Tool: ${model.tool.name}-${model.tool.version}`],
      ...(model.properties.length > 0 ? { comment: model.properties.map(([name, value]) => `${name}=${value}`).join('\n') } : {}),
    },
    packages,
    relationships,
  };
  if (licenses.extracted.size > 0) document.hasExtractedLicensingInfos = [...licenses.extracted.values()].sort((a, b) => (a.licenseId < b.licenseId ? -1 : 1));
  return document;
}

/**
 * A small, strict kustomize renderer for the subset that k8s/ uses, so the manifests can be
 * rendered and checked in CI without a kustomize binary (none installs from the registries this
 * project reaches). Anything outside the subset throws instead of being silently ignored.
 *
 * Supported kustomization fields: resources (files and directories), components, namespace,
 * images, patches (strategic-merge patch files matched by kind and name, no `target`).
 * Where `kubectl kustomize` is on PATH the test compares this renderer's output with it.
 */
import { readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { parseAllDocuments } from 'yaml';

export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
  };
  [field: string]: unknown;
}

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };

const KUSTOMIZATION_FIELDS = new Set(['apiVersion', 'kind', 'resources', 'components', 'namespace', 'images', 'patches']);
const CLUSTER_SCOPED = new Set([
  'Namespace', 'ClusterRole', 'ClusterRoleBinding', 'CustomResourceDefinition', 'PersistentVolume',
  'StorageClass', 'PriorityClass', 'IngressClass', 'ValidatingWebhookConfiguration',
  'MutatingWebhookConfiguration', 'APIService',
]);

/** Strategic-merge keys of the list fields used here (x-kubernetes-patch-merge-key). */
const MERGE_KEYS: Record<string, string> = {
  containers: 'name',
  initContainers: 'name',
  ephemeralContainers: 'name',
  env: 'name',
  volumes: 'name',
  volumeMounts: 'mountPath',
  imagePullSecrets: 'name',
  hostAliases: 'ip',
};

function readYamlDocuments(file: string): JsonObject[] {
  const documents = parseAllDocuments(readFileSync(file, 'utf8'));
  const out: JsonObject[] = [];
  for (const document of documents) {
    if (document.errors.length > 0) throw new Error(`${file}: ${document.errors[0]!.message}`);
    const value = document.toJS() as Json;
    if (value === null || value === undefined) continue;
    if (typeof value !== 'object' || Array.isArray(value)) throw new Error(`${file}: a document is not a mapping`);
    out.push(value);
  }
  return out;
}

function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function clone<T>(value: T): T {
  return structuredClone(value);
}

function group(apiVersion: string): string {
  return apiVersion.includes('/') ? apiVersion.split('/')[0]! : '';
}

export function objectId(object: K8sObject): string {
  return `${group(object.apiVersion)}/${object.kind}/${object.metadata.namespace ?? ''}/${object.metadata.name}`;
}

function asK8sObject(value: JsonObject, where: string): K8sObject {
  const metadata = value.metadata;
  if (typeof value.apiVersion !== 'string' || typeof value.kind !== 'string' || !isObject(metadata) || typeof metadata.name !== 'string') {
    throw new Error(`${where}: every resource needs apiVersion, kind and metadata.name`);
  }
  return value as unknown as K8sObject;
}

/** Strategic merge of `patch` into `target` (both already plain JSON). */
function strategicMerge(target: Json | undefined, patch: Json, field: string): Json {
  if (isObject(patch)) {
    for (const key of Object.keys(patch)) {
      if (key.startsWith('$')) throw new Error(`patch directive ${key} is not supported by this renderer`);
    }
    if (!isObject(target)) return clone(patch);
    const merged: JsonObject = { ...target };
    for (const [key, value] of Object.entries(patch)) {
      if (value === null) delete merged[key];
      else merged[key] = strategicMerge(target[key], value, key);
    }
    return merged;
  }
  if (Array.isArray(patch) && Array.isArray(target)) {
    let mergeKey = MERGE_KEYS[field];
    if (field === 'ports') {
      // Container ports merge on containerPort, Service ports on port.
      const sample = [...patch, ...target].find(isObject);
      mergeKey = sample && 'containerPort' in sample ? 'containerPort' : 'port';
    }
    if (!mergeKey) return clone(patch); // lists without a merge key are replaced
    const merged = target.map((item) => clone(item));
    // Items the target lacks go first, in the patch's order, as kustomize places them.
    const added: Json[] = [];
    for (const item of patch) {
      if (!isObject(item) || !(mergeKey in item)) throw new Error(`list ${field}: item without ${mergeKey}`);
      const index = merged.findIndex((existing) => isObject(existing) && existing[mergeKey!] === item[mergeKey!]);
      if (index === -1) added.push(clone(item));
      else merged[index] = strategicMerge(merged[index], item, field);
    }
    return [...added, ...merged];
  }
  return clone(patch);
}

function applyImages(node: Json, images: JsonObject[]): void {
  if (Array.isArray(node)) {
    for (const item of node) applyImages(item, images);
    return;
  }
  if (!isObject(node)) return;
  for (const [key, value] of Object.entries(node)) {
    if ((key === 'containers' || key === 'initContainers') && Array.isArray(value)) {
      for (const container of value) {
        if (!isObject(container) || typeof container.image !== 'string') continue;
        const image = container.image;
        const name = image.replace(/@.*$/, '').replace(/:[^/:]*$/, '');
        const rule = images.find((candidate) => candidate.name === name);
        if (!rule) continue;
        const newName = typeof rule.newName === 'string' ? rule.newName : name;
        if (typeof rule.digest === 'string') container.image = `${newName}@${rule.digest}`;
        else if (typeof rule.newTag === 'string') container.image = `${newName}:${rule.newTag}`;
        else container.image = image.replace(name, newName);
      }
    }
    applyImages(value, images);
  }
}

function build(dir: string, expectedKind: 'Kustomization' | 'Component', inherited: K8sObject[]): K8sObject[] {
  const file = path.join(dir, 'kustomization.yaml');
  const [kustomization] = readYamlDocuments(file);
  if (!kustomization) throw new Error(`${file} is empty`);
  if (kustomization.kind !== expectedKind) throw new Error(`${file}: expected kind ${expectedKind}`);
  for (const key of Object.keys(kustomization)) {
    if (!KUSTOMIZATION_FIELDS.has(key)) throw new Error(`${file}: field ${key} is not supported by this renderer`);
  }

  const objects = [...inherited];
  const seen = new Set(objects.map(objectId));
  const add = (object: K8sObject, where: string) => {
    const id = objectId(object);
    if (seen.has(id)) throw new Error(`${where}: duplicate resource ${id}`);
    seen.add(id);
    objects.push(object);
  };

  for (const entry of (kustomization.resources as string[] | undefined) ?? []) {
    const resourcePath = path.resolve(dir, entry);
    if (statSync(resourcePath).isDirectory()) {
      for (const object of build(resourcePath, 'Kustomization', [])) add(object, resourcePath);
    } else {
      for (const document of readYamlDocuments(resourcePath)) add(asK8sObject(document, resourcePath), resourcePath);
    }
  }

  let result = objects;
  for (const entry of (kustomization.components as string[] | undefined) ?? []) {
    result = build(path.resolve(dir, entry), 'Component', result);
  }

  for (const entry of (kustomization.patches as JsonObject[] | undefined) ?? []) {
    if (typeof entry.path !== 'string' || Object.keys(entry).length !== 1) {
      throw new Error(`${file}: only \`- path: <strategic merge patch file>\` patches are supported`);
    }
    const patchFile = path.resolve(dir, entry.path);
    for (const patch of readYamlDocuments(patchFile)) {
      const target = asK8sObject(patch, patchFile);
      const matches = result.filter(
        (object) =>
          object.kind === target.kind &&
          group(object.apiVersion) === group(target.apiVersion) &&
          object.metadata.name === target.metadata.name &&
          (target.metadata.namespace === undefined || object.metadata.namespace === target.metadata.namespace),
      );
      if (matches.length !== 1) {
        throw new Error(`${patchFile}: patch for ${target.kind}/${target.metadata.name} matches ${matches.length} resources`);
      }
      const index = result.indexOf(matches[0]!);
      result[index] = strategicMerge(matches[0] as unknown as Json, patch, '') as unknown as K8sObject;
    }
  }

  const namespace = kustomization.namespace;
  if (typeof namespace === 'string') {
    for (const object of result) {
      if (object.kind === 'Namespace') {
        if (object.metadata.name !== namespace) throw new Error(`${file}: Namespace ${object.metadata.name} differs from namespace ${namespace}`);
      } else if (!CLUSTER_SCOPED.has(object.kind)) {
        object.metadata = { ...object.metadata, namespace };
      }
    }
  }

  const images = (kustomization.images as JsonObject[] | undefined) ?? [];
  if (images.length > 0) for (const object of result) applyImages(object as unknown as Json, images);

  return result;
}

/** Renders the kustomization in `dir` like `kustomize build dir` (order aside). */
export function kustomize(dir: string): K8sObject[] {
  return build(path.resolve(dir), 'Kustomization', []).map((object) => clone(object));
}

/** Renders `resources` plus `components` as one ad-hoc kustomization (for the optional components). */
export function kustomizeWith(resourceDirs: string[], componentDirs: string[]): K8sObject[] {
  let objects: K8sObject[] = [];
  for (const dir of resourceDirs) objects = objects.concat(kustomize(dir));
  for (const dir of componentDirs) objects = build(path.resolve(dir), 'Component', objects);
  return objects.map((object) => clone(object));
}

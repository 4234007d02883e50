/**
 * A small, strict kustomize renderer for the subset that k8s/ uses, so the manifests can be
 * rendered and checked in CI without a kustomize binary (none installs from the registries this
 * project reaches). Anything outside the subset throws instead of being silently ignored.
 *
 * Supported kustomization fields: resources (files and directories), components, namespace,
 * images, patches (strategic-merge patch files matched by kind and name, no `target`),
 * configMapGenerator (`envs` and `literals`, `options.labels` / `options.annotations`, the
 * default behavior `create`): a generated ConfigMap is named `<name>-<hash of its final data>`
 * and the pod specs' references to it (envFrom, env valueFrom, volumes) follow the new name.
 * Where `kubectl kustomize` is on PATH the test compares this renderer's output with it.
 */
import { createHash } from 'node:crypto';
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

const KUSTOMIZATION_FIELDS = new Set(['apiVersion', 'kind', 'resources', 'components', 'namespace', 'images', 'patches', 'configMapGenerator']);
const GENERATOR_FIELDS = new Set(['name', 'envs', 'literals', 'options']);
const GENERATOR_OPTION_FIELDS = new Set(['labels', 'annotations']);
/**
 * Marks a generated ConfigMap until the build is complete: patches (overlays, components) find
 * it by its plain name, and only the final data is hashed into its name (as kustomize does).
 */
const NEEDS_HASH = 'test.chat.internal/needs-hash';
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

/** An env file's pairs, read as kustomize reads them; anything kustomize would read differently from what it looks like throws. */
function readEnvFile(file: string): [string, string][] {
  const pairs: [string, string][] = [];
  readFileSync(file, 'utf8')
    .replace(/^\uFEFF/, '')
    .split(/\r?\n/)
    .forEach((raw, index) => {
      const line = raw.trimStart();
      if (line === '' || line.startsWith('#')) return;
      const where = `${file}:${index + 1}`;
      const match = /^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line);
      if (!match) throw new Error(`${where}: not KEY=value`);
      const value = match[2]!;
      // kustomize keeps quotes and surrounding spaces as part of the value: almost always a mistake.
      if (/^["']|\s$|^\s/.test(value)) throw new Error(`${where}: quotes or spaces around the value of ${match[1]} would be part of it`);
      if (/[\u0000-\u001f\u007f]/.test(value)) throw new Error(`${where}: control character in ${match[1]}`);
      pairs.push([match[1]!, value]);
    });
  return pairs;
}

/** kustomize's `key=value` literal: surrounding quotes (both the same) are removed. */
function parseLiteral(source: string, where: string): [string, string] {
  const at = source.indexOf('=');
  if (at <= 0) throw new Error(`${where}: literal ${source} is not key=value`);
  let value = source.slice(at + 1);
  if (value.length >= 2 && value[0] === value.at(-1) && (value[0] === '"' || value[0] === "'")) value = value.slice(1, -1);
  return [source.slice(0, at), value];
}

function generateConfigMap(entry: JsonObject, dir: string, file: string): K8sObject {
  for (const key of Object.keys(entry)) {
    if (!GENERATOR_FIELDS.has(key)) throw new Error(`${file}: configMapGenerator field ${key} is not supported by this renderer`);
  }
  if (typeof entry.name !== 'string') throw new Error(`${file}: configMapGenerator entry without a name`);
  const options = (entry.options ?? {}) as JsonObject;
  for (const key of Object.keys(options)) {
    if (!GENERATOR_OPTION_FIELDS.has(key)) throw new Error(`${file}: configMapGenerator option ${key} is not supported by this renderer`);
  }
  const pairs: [string, string][] = [
    ...((entry.envs as string[] | undefined) ?? []).flatMap((envFile) => readEnvFile(path.resolve(dir, envFile))),
    ...((entry.literals as string[] | undefined) ?? []).map((literal) => parseLiteral(literal, file)),
  ];
  const data: Record<string, string> = {};
  for (const [key, value] of pairs) {
    if (key in data) throw new Error(`${file}: ConfigMap ${entry.name} has the key ${key} twice`);
    data[key] = value;
  }
  const metadata: K8sObject['metadata'] = { name: entry.name };
  if (options.labels) metadata.labels = { ...(options.labels as Record<string, string>) };
  metadata.annotations = { ...((options.annotations as Record<string, string> | undefined) ?? {}), [NEEDS_HASH]: 'true' };
  return { apiVersion: 'v1', kind: 'ConfigMap', metadata, data };
}

/**
 * kustomize's name suffix for a ConfigMap (sigs.k8s.io/kustomize/api/hasher): the first ten hex
 * digits of the SHA-256 of Go's json.Marshal of {data, kind, name}, with 0 1 3 a e replaced by
 * g h k m t. kustomize looks the name up with a path ("metadata/name") that its lookup takes as
 * one field name, which it never finds, so the name it hashes is "" (checked against
 * `kubectl kustomize` by the test, and: two ConfigMaps with the same data get the same suffix).
 */
function configMapHash(data: Record<string, string>, binaryData: unknown): string {
  const sorted = (record: Record<string, unknown>) => Object.fromEntries(Object.keys(record).sort().map((key) => [key, record[key]]));
  const encoded: Record<string, unknown> = { data: sorted(data) };
  if (isObject(binaryData)) encoded.binaryData = sorted(binaryData);
  encoded.kind = 'ConfigMap';
  encoded.name = '';
  // Go's encoder escapes <, >, & and U+2028/U+2029; JSON.stringify does not.
  const json = JSON.stringify(sorted(encoded)).replace(/[<>&\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  const hex = createHash('sha256').update(json).digest('hex').slice(0, 10);
  const letters: Record<string, string> = { '0': 'g', '1': 'h', '3': 'k', a: 'm', e: 't' };
  return hex.replace(/[013ae]/g, (c) => letters[c]!);
}

/** Every pod spec in an object (Deployment, Job, CronJob, … templates). */
function podSpecsOf(node: Json, found: JsonObject[] = []): JsonObject[] {
  if (Array.isArray(node)) {
    for (const item of node) podSpecsOf(item, found);
  } else if (isObject(node)) {
    if (Array.isArray(node.containers)) found.push(node);
    else for (const value of Object.values(node)) podSpecsOf(value, found);
  }
  return found;
}

/** Names each generated ConfigMap after its hash, and points the pod specs' references at the new names. */
function finalize(objects: K8sObject[]): K8sObject[] {
  const renamed = new Map<string, string>(); // `${namespace}/${name}` → hashed name
  for (const object of objects) {
    const annotations = object.metadata.annotations;
    if (!annotations || !(NEEDS_HASH in annotations)) continue;
    const { [NEEDS_HASH]: _, ...rest } = annotations;
    const view = object as unknown as { data?: Record<string, string>; binaryData?: unknown };
    const name = `${object.metadata.name}-${configMapHash(view.data ?? {}, view.binaryData)}`;
    renamed.set(`${object.metadata.namespace ?? ''}/${object.metadata.name}`, name);
    object.metadata = { ...object.metadata, name, annotations: rest };
    if (Object.keys(rest).length === 0) delete object.metadata.annotations;
  }
  if (renamed.size === 0) return objects;
  for (const object of objects) {
    const rename = (ref: Json | undefined) => {
      if (!isObject(ref) || typeof ref.name !== 'string') return;
      const name = renamed.get(`${object.metadata.namespace ?? ''}/${ref.name}`);
      if (name) ref.name = name;
    };
    for (const spec of podSpecsOf(object as unknown as Json)) {
      for (const list of [spec.containers, spec.initContainers]) {
        for (const c of (Array.isArray(list) ? list : []).filter(isObject)) {
          for (const from of (Array.isArray(c.envFrom) ? c.envFrom : []).filter(isObject)) rename(from.configMapRef);
          for (const env of (Array.isArray(c.env) ? c.env : []).filter(isObject)) {
            if (isObject(env.valueFrom)) rename(env.valueFrom.configMapKeyRef);
          }
        }
      }
      for (const volume of (Array.isArray(spec.volumes) ? spec.volumes : []).filter(isObject)) {
        rename(volume.configMap);
        const sources = isObject(volume.projected) && Array.isArray(volume.projected.sources) ? volume.projected.sources : [];
        for (const source of sources.filter(isObject)) rename(source.configMap);
      }
    }
  }
  return objects;
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

  for (const entry of (kustomization.configMapGenerator as JsonObject[] | undefined) ?? []) {
    add(generateConfigMap(entry, dir, file), file);
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
  return finalize(build(path.resolve(dir), 'Kustomization', []).map((object) => clone(object)));
}

/** Renders `resources` plus `components` as one ad-hoc kustomization (for the optional components). */
export function kustomizeWith(resourceDirs: string[], componentDirs: string[]): K8sObject[] {
  let objects: K8sObject[] = [];
  for (const dir of resourceDirs) objects = objects.concat(build(path.resolve(dir), 'Kustomization', []));
  for (const dir of componentDirs) objects = build(path.resolve(dir), 'Component', objects);
  return finalize(objects.map((object) => clone(object)));
}

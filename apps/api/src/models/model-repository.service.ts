import { randomUUID } from 'node:crypto';
import { basename } from 'node:path';
import { type BeforeApplicationShutdown, Inject, Injectable, Logger, type OnApplicationBootstrap } from '@nestjs/common';
import { EntityManager, UniqueConstraintViolationException } from '@mikro-orm/core';
import type { Redis } from 'ioredis';
import type { Principal } from '@aperture/common/auth.decorators.js';
import { badRequest, conflict, notFound } from '@aperture/common/problem.js';
import type { AppConfig } from '@aperture/config/config.js';
import { APP_CONFIG } from '@aperture/config/config.module.js';
import { type InstalledModelFile, InstalledModel } from '@aperture/database/entities/installed-model.entity.js';
import { Job, type JsonObject } from '@aperture/database/entities/job.entity.js';
import { InjectManifest } from '@aperture/models/manifest.provider.js';
import type { ModelEntry, ModelManifest } from '@aperture/models/manifest.js';
import { ModelControlKeys, parseControlMessage, publishControl } from '@aperture/models/model-control.js';
import { installedModelId } from '@aperture/models/model-ids.js';
import {
  describeModel,
  type InspectedFile,
  inspectFile,
  MODEL_NAME_RE,
  type ModelConfig,
  ModelDefinitionError,
  parseModelConfig,
} from '@aperture/models/model-repository.js';
import { createRedis, REDIS } from '@aperture/redis/redis.module.js';
import { StorageKeys } from '@aperture/storage/storage-keys.js';
import { STORAGE, type StoragePort } from '@aperture/storage/storage.port.js';
import type { UploadedFile } from '../uploads/upload-files.js';
import { storeUpload } from '../uploads/upload-files.js';

/** The form of POST /models besides its files. */
export interface InstallForm {
  name?: string | undefined;
  config?: string | undefined;
}

/** An installed model's manifest entry as stored in its row (the files' paths are their storage keys). */
export const entryOfRow = (row: InstalledModel): ModelEntry => ({
  ...(row.entry as unknown as ModelEntry),
  source: 'installed',
  id: installedModelId(row.id),
});

/**
 * The API's end of the model repository: installs models uploaded by an admin (checked against their ONNX contract
 * without ONNX Runtime, stored, recorded, announced to every process over the control channel) and removes them.
 * Installed models join this process's manifest (so the catalogue, the intake and the ids see them) at boot and
 * whenever any API replica announces an install or a removal.
 */
@Injectable()
export class ModelRepositoryService implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger = new Logger('Models');
  private readonly keys: ModelControlKeys;
  private subscriber: Redis | null = null;

  constructor(
    @InjectManifest() private readonly manifest: ModelManifest,
    private readonly em: EntityManager,
    @Inject(STORAGE) private readonly storage: StoragePort,
    @Inject(REDIS) private readonly redis: Redis,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {
    this.keys = new ModelControlKeys(config.redis.prefix);
  }

  async onApplicationBootstrap(): Promise<void> {
    await this.reload().catch((e: Error) => this.logger.warn(`Cannot read the installed models: ${e.message}`));
    this.subscriber = createRedis(this.config.redis.url, 'aperture-models-repository');
    this.subscriber.on('message', (_c: string, raw: string) => {
      const msg = parseControlMessage(raw);
      if (msg && (msg.op === 'install' || msg.op === 'remove')) {
        void this.reload().catch((e: Error) => this.logger.warn(`Cannot read the installed models: ${e.message}`));
      }
    });
    await this.subscriber.subscribe(this.keys.channel);
  }

  async beforeApplicationShutdown(): Promise<void> {
    await this.subscriber?.quit().catch(() => this.subscriber?.disconnect());
  }

  /** Replaces the installed models of the manifest with the database's (a name a shipped model has is skipped). */
  async reload(): Promise<void> {
    const rows = await this.em.fork().find(InstalledModel, {}, { orderBy: { installedAt: 'asc' } });
    const shipped = this.manifest.models.filter((m) => m.source !== 'installed');
    const taken = new Set(shipped.map((m) => m.name));
    const installed: ModelEntry[] = [];
    for (const row of rows) {
      if (taken.has(row.name)) {
        this.logger.warn(`Installed model ${row.name} is hidden: a shipped model has that name`);
        continue;
      }
      installed.push(entryOfRow(row));
    }
    this.manifest.models.splice(0, this.manifest.models.length, ...shipped, ...installed);
  }

  /**
   * Installs a model from one ONNX file (or a SAM encoder/decoder pair) and an optional model.json: 400 naming the
   * file, tensor or field when it cannot be described or does not fit its contract, 409 when the name is taken.
   */
  async install(files: UploadedFile[], form: InstallForm, p: Principal): Promise<ModelEntry> {
    let config: ModelConfig = {};
    if (form.config !== undefined && form.config.trim() !== '') {
      let raw: unknown;
      try {
        raw = JSON.parse(form.config);
      } catch (e) {
        throw badRequest(`config is not JSON: ${(e as Error).message}`, { errors: [{ field: 'config', messages: ['not JSON'] }] });
      }
      try {
        config = parseModelConfig(raw, 'config');
      } catch (e) {
        if (e instanceof ModelDefinitionError) throw badRequest(e.message, { errors: [{ field: 'config', messages: e.problems }] });
        throw e;
      }
    }
    if (files.length === 0 || files.length > 2) {
      throw badRequest('Send one ONNX file (two for a Segment Anything encoder/decoder pair) as the multipart field "file".', {
        errors: [{ field: 'file', messages: [`${files.length} files`] }],
      });
    }
    const name = form.name ?? config.name ?? nameFromFiles(files);
    if (!MODEL_NAME_RE.test(name)) {
      throw badRequest(`"${name}" is no valid model name: 1-63 lower-case letters, digits or dashes (send "name").`, {
        errors: [{ field: 'name', messages: ['1-63 of [a-z0-9-], starting with a letter or digit'] }],
      });
    }
    if (config.name !== undefined && form.name !== undefined && config.name !== form.name) {
      throw badRequest(`name (${form.name}) and config.name (${config.name}) differ: send one of them.`, {
        errors: [{ field: 'name', messages: ['differs from config.name'] }],
      });
    }
    this.assertFree(name);
    const inspected: InspectedFile[] = [];
    let entry: ModelEntry;
    // The row's id gives the model's numeric id (model-ids.ts): draw one whose numeric id no model has.
    const ids = new Set(this.manifest.models.map((m) => m.id));
    let id = randomUUID();
    while (ids.has(installedModelId(id))) id = randomUUID();
    try {
      for (const f of files) inspected.push(await inspectFile(f.path, f.originalname, basename(f.originalname)));
      entry = describeModel(name, inspected, config, 'installed');
    } catch (e) {
      if (e instanceof ModelDefinitionError) {
        throw badRequest(`The model cannot be installed: ${e.message}`, { errors: [{ field: 'file', messages: e.problems }] });
      }
      throw e;
    }
    // Store by role (describeModel put the encoder first); the entry's paths become the storage keys.
    const stored: InstalledModelFile[] = [];
    try {
      for (const mf of entry.files) {
        const upload = files[inspected.findIndex((f) => f.path === mf.path)]!;
        const key = StorageKeys.installedModelFile(id, mf.role);
        await storeUpload(this.storage, key, upload);
        stored.push({ role: mf.role, key, file_name: basename(upload.originalname), sha256: mf.sha256, size_bytes: mf.size_bytes });
        mf.path = key;
      }
      const em = this.em.fork();
      const row = em.create(InstalledModel, {
        id,
        name,
        kind: entry.kind,
        contract: entry.contract,
        files: stored,
        config: config as unknown as JsonObject,
        entry: entry as unknown as JsonObject,
        installedBy: p.username,
      });
      await em.persist(row).flush();
    } catch (e) {
      await this.storage.deletePrefix(StorageKeys.installedModelPrefix(id)).catch(() => undefined);
      if (e instanceof UniqueConstraintViolationException) throw conflict(`Model ${name} already exists.`);
      throw e;
    }
    await this.reload();
    await publishControl(this.redis, this.keys, { op: 'install', model: name, request_id: id }).catch((e: Error) =>
      this.logger.warn(`Cannot announce model ${name}: ${e.message}`),
    );
    this.logger.log(`Model ${name} (${entry.kind}, ${entry.contract}) installed by ${p.username}`);
    return this.manifest.models.find((m) => m.name === name) ?? entry;
  }

  /** Removes an installed model: 404 unknown, 400 shipped, 409 while a queued or running job uses it. */
  async remove(name: string): Promise<void> {
    const m = this.manifest.models.find((x) => x.name === name);
    if (!m) {
      await this.reload();
      if (!this.manifest.models.some((x) => x.name === name)) throw notFound(`Model ${name} does not exist.`);
      return this.remove(name);
    }
    if (m.source !== 'installed') {
      throw badRequest(`Model ${name} is shipped with MODELS_DIR and cannot be deleted; only models installed with POST /models can.`);
    }
    const em = this.em.fork();
    const busy = await em.count(Job, { model: name, status: { $in: ['queued', 'running'] } });
    if (busy > 0) {
      throw conflict(`Model ${name} is in use by ${busy} queued or running job(s); delete it once they have finished or been cancelled.`, {
        jobs_in_use: busy,
      });
    }
    const row = await em.findOne(InstalledModel, { name });
    if (row) {
      await em.remove(row).flush();
      await this.storage
        .deletePrefix(StorageKeys.installedModelPrefix(row.id))
        .catch((e: Error) => this.logger.warn(`Cannot delete the files of model ${name}: ${e.message}`));
    }
    await this.reload();
    await publishControl(this.redis, this.keys, { op: 'remove', model: name, request_id: randomUUID() }).catch((e: Error) =>
      this.logger.warn(`Cannot announce the removal of model ${name}: ${e.message}`),
    );
    this.logger.log(`Model ${name} removed`);
  }

  private assertFree(name: string): void {
    const taken = this.manifest.models.find((m) => m.name === name);
    if (taken) throw conflict(`Model ${name} already exists (${taken.source ?? 'shipped'}): choose another name, or delete it first.`);
  }
}

/** yolo11n.onnx → yolo11n; sam_vit_b-encoder.onnx + …-decoder.onnx → sam-vit-b. */
function nameFromFiles(files: UploadedFile[]): string {
  const stem = basename(files[0]!.originalname).replace(/\.onnx$/i, '');
  const base = files.length === 2 ? stem.replace(/[-_.]?(encoder|decoder)$/i, '') : stem;
  return base
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 63);
}

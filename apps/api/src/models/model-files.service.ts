import { createReadStream } from 'node:fs';
import type { Readable } from 'node:stream';
import { stat } from 'node:fs/promises';
import { basename, resolve } from 'node:path';
import { Inject, Injectable } from '@nestjs/common';
import { notFound } from '@aperture/common/problem.js';
import { MODELS_DIR } from '@aperture/models/manifest.provider.js';
import { FileHashCache } from '@aperture/models/model-repository.js';
import type { ModelFile } from '@aperture/models/manifest.js';
import { STORAGE, type StoragePort } from '@aperture/storage/storage.port.js';
import { ModelCatalogueService } from './model-catalogue.service.js';

/** A model file ready to send: its name, size, sha256 (the file's, as read from disk) and content. */
export interface ModelFileDownload {
  name: string;
  sizeBytes: number;
  sha256: string;
  open(): Readable | Promise<Readable>;
}

/**
 * The ONNX files of the installed models, by role (SAM: encoder and decoder; the others: model), for clients that run
 * a model themselves, such as the SAM decoder on top of GET /images/{id}/embedding. The API only reads the bytes.
 * A file's sha256 is computed from the file on disk (a replaced file gets a new one) and remembered while its size,
 * modification and change times and inode stay (FileHashCache).
 */
@Injectable()
export class ModelFilesService {
  private readonly hashes = FileHashCache.inMemory();

  constructor(
    private readonly catalogue: ModelCatalogueService,
    @Inject(MODELS_DIR) private readonly dir: string,
    @Inject(STORAGE) private readonly storage: StoragePort,
  ) {}

  async file(name: string, role: string): Promise<ModelFileDownload> {
    const m = this.catalogue.entry(name);
    const f = m.files.find((x: ModelFile) => x.role === role);
    if (!f) {
      const roles = m.files.map((x) => x.role).join(', ');
      const why = role === 'decoder' ? ' (only SAM models have a decoder)' : '';
      throw notFound(`Model ${name} (${m.kind}) has no ${role} file${why}; its files: ${roles}.`);
    }
    if (m.source === 'installed') {
      // Installed models: the file is in storage under f.path; its sha256 was taken at install time.
      return { name: `${m.name}-${role}.onnx`, sizeBytes: f.size_bytes, sha256: f.sha256, open: () => this.storage.read(f.path) };
    }
    const path = resolve(this.dir, f.path);
    const s = await stat(path).catch(() => null);
    if (!s?.isFile()) throw notFound(`The ${role} file of model ${name} is missing from the models folder.`);
    return {
      name: basename(f.path),
      sizeBytes: s.size,
      sha256: (await this.hashes.hash(path)).sha256,
      open: () => createReadStream(path),
    };
  }
}

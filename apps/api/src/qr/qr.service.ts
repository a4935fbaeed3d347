import { randomInt, randomUUID } from 'node:crypto';
import type { Readable } from 'node:stream';
import { Inject, Injectable } from '@nestjs/common';
import { EntityManager } from '@mikro-orm/core';
import type { AppConfig } from '@aperture/config/config.js';
import { APP_CONFIG } from '@aperture/config/config.module.js';
import type { Principal } from '@aperture/common/auth.decorators.js';
import { conflict } from '@aperture/common/problem.js';
import { JobArtifact } from '@aperture/database/entities/job.entity.js';
import { QrBatch, QrCode } from '@aperture/database/entities/qr.entity.js';
import { User } from '@aperture/database/entities/user.entity.js';
import { findOwned } from '@aperture/database/owned.js';
import { JobsService } from '@aperture/queue/jobs.service.js';
import { STORAGE, type StoragePort } from '@aperture/storage/storage.port.js';

const ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ'; // Crockford base32: no I, L, O, U

/**
 * 26 random base32 characters (130 bits): the code is also the owner's key to the booth's result page, so it must be
 * unguessable; collisions are practically impossible, and the unique index catches one anyway.
 */
function newQrCode(): string {
  let s = '';
  for (let i = 0; i < 26; i++) s += ALPHABET[randomInt(32)];
  return s;
}

@Injectable()
export class QrService {
  constructor(
    private readonly em: EntityManager,
    private readonly jobs: JobsService,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(STORAGE) private readonly storage: StoragePort,
  ) {}

  /** Stores the batch, its n codes and its job in one transaction, then queues the job. */
  async create(n: number, p: Principal): Promise<QrBatch> {
    const template = this.config.qr.urlTemplate;
    const batch = await this.em.transactional(async (em) => {
      const owner = em.getReference(User, p.userId);
      const batchId = randomUUID();
      const job = this.jobs.build(em, 'qr.batch', owner, { batchId });
      const b = em.create(QrBatch, { id: batchId, owner, n, urlTemplate: template, job });
      const seen = new Set<string>();
      for (let i = 0; i < n; i++) {
        let code = newQrCode();
        while (seen.has(code)) code = newQrCode();
        seen.add(code);
        em.create(QrCode, { batch: b, position: i, code, value: template.replaceAll('{code}', code) });
      }
      return b;
    });
    await this.jobs.enqueue(batch.job);
    return batch;
  }

  async get(id: string, p: Principal, em: EntityManager = this.em): Promise<QrBatch> {
    return findOwned(em, QrBatch, id, p.role === 'admin' ? null : p.userId, 'QR batch', { populate: ['job'] });
  }

  /** The batch and its PDF, once its job has completed; a 409 before that (or when the file went missing). */
  async pdf(id: string, p: Principal): Promise<{ batch: QrBatch; pdf: JobArtifact; content: Readable }> {
    const batch = await this.get(id, p);
    const job = batch.job;
    if (job.status !== 'completed') {
      const pct = Math.round(job.progress * 100);
      throw conflict(
        `The PDF of QR batch ${id} is not ready: the batch is ${job.status}${job.status === 'running' ? ` (${pct}% done)` : ''}.`,
      );
    }
    const pdf = await this.em.findOne(JobArtifact, { job: job.id, name: 'qr.pdf' });
    if (!pdf) throw conflict(`The PDF of QR batch ${id} is missing; re-create the batch.`);
    return { batch, pdf, content: await this.storage.read(pdf.storageKey) };
  }
}

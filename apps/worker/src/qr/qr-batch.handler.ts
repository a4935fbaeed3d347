import { Injectable } from '@nestjs/common';
import { QrBatch, QrCode } from '@aperture/database/entities/qr.entity.js';
import { qrPageCount } from '@aperture/qr/qr-layout.js';
import { renderQrPdf } from '@aperture/qr/qr-pdf.js';
import { HandlesJob, JobCancelledError, type JobContext, type JobHandler, PermanentJobError } from '@aperture/queue/job-handler.js';
import type { QrBatchResult } from '@aperture/queue/job-registry.js';

/** Renders a QR batch's stored codes into qr.pdf. Idempotent: a retry renders the same codes again. */
@Injectable()
@HandlesJob('qr.batch')
export class QrBatchHandler implements JobHandler<'qr.batch'> {
  async handle(ctx: JobContext<'qr.batch'>): Promise<QrBatchResult> {
    const batch = await ctx.em.findOne(QrBatch, { id: ctx.params.batchId });
    if (!batch) throw new PermanentJobError(`QR batch ${ctx.params.batchId} no longer exists`);
    const codes = await ctx.em.find(QrCode, { batch: batch.id }, { orderBy: { position: 'asc' } });
    if (codes.length !== batch.n) throw new PermanentJobError(`QR batch ${batch.id} has ${codes.length} codes, expected ${batch.n}`);
    const started = Date.now();
    const pdf = await renderQrPdf(codes, {
      title: `Aperture QR batch ${batch.id.slice(0, 8)}`,
      date: batch.createdAt,
      signal: ctx.signal,
      onProgress: (done, total) => ctx.progress((0.95 * done) / total),
    });
    if (ctx.signal.aborted) throw new JobCancelledError();
    const artifact = await ctx.saveArtifact('qr.pdf', 'application/pdf', pdf);
    return {
      batch_id: batch.id,
      codes: batch.n,
      pages: qrPageCount(batch.n),
      pdf_artifact_id: artifact.id,
      pdf_bytes: artifact.sizeBytes,
      render_ms: Date.now() - started,
    };
  }
}

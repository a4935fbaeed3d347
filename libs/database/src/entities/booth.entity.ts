import { randomUUID } from 'node:crypto';
import type { Opt } from '@mikro-orm/core';
import { Entity, Index, ManyToOne, OneToOne, PrimaryKey, Property } from '@mikro-orm/decorators/legacy';
import { Job } from './job.entity.js';
import { QrCode } from './qr.entity.js';
import { User } from './user.entity.js';

/** What a reviewer decided about a submission's options; null while none was taken (or after a retry). */
export const BOOTH_DECISIONS = ['confirmed', 'cancelled'] as const;
export type BoothDecision = (typeof BOOTH_DECISIONS)[number];

/** Longest owner or animal name the booth accepts. */
export const BOOTH_NAME_MAX = 100;

/**
 * One photo handed in at the booth: the owner's and the animal's names, the QR code given to the owner, the
 * stored original and the job that makes its X-ray options. The review state lives here and on the job: awaiting
 * review = job completed and no decision yet.
 */
@Entity({ tableName: 'booth_submissions' })
@Index({ properties: ['owner', 'createdAt'] })
export class BoothSubmission {
  @PrimaryKey({ type: 'uuid' })
  id: string = randomUUID();

  /** Who submitted it (the station, or a user). */
  @ManyToOne(() => User, { deleteRule: 'cascade' })
  owner!: User;

  @OneToOne(() => Job, { owner: true, deleteRule: 'cascade' })
  job!: Job;

  @ManyToOne(() => QrCode, { deleteRule: 'cascade' })
  qrCode!: QrCode;

  /**
   * The QR code's id while the submission is open (not cancelled): unique, so one code is tied to at most one open
   * submission even when two booths submit it at once. Null once cancelled.
   */
  @Property({ type: 'uuid', nullable: true, unique: true })
  openQrCode: string | null = null;

  @Property({ type: 'string', length: BOOTH_NAME_MAX })
  firstName!: string;

  @Property({ type: 'string', length: BOOTH_NAME_MAX })
  lastName!: string;

  @Property({ type: 'string', length: BOOTH_NAME_MAX })
  animalName!: string;

  @Property({ type: 'string', length: 32 })
  animalType!: string;

  @Property({ type: 'boolean' })
  brokenBone: boolean & Opt = false;

  /** The photo as uploaded (booth/{id}/original). */
  @Property({ type: 'string', length: 300 })
  originalKey!: string;

  @Property({ type: 'string', length: 100 })
  originalContentType!: string;

  @Property({ type: 'integer' })
  width!: number;

  @Property({ type: 'integer' })
  height!: number;

  @Property({ type: 'string', length: 16, nullable: true })
  decision: BoothDecision | null = null;

  /** The confirmed option's index. */
  @Property({ type: 'integer', nullable: true })
  choice: number | null = null;

  /** Retries asked by reviewers so far; a decision is guarded by it, so two reviewers cannot both act on one round. */
  @Property({ type: 'integer' })
  reviewRound: number & Opt = 0;

  /** The confirmed X-ray and the original, as PNG, kept for the owner's page (booth/{id}/xray.png, original.png). */
  @Property({ type: 'string', length: 300, nullable: true })
  xrayKey: string | null = null;

  @Property({ type: 'string', length: 300, nullable: true })
  originalPngKey: string | null = null;

  @Property({ type: 'datetime', nullable: true })
  reviewedAt: Date | null = null;

  @Property({ type: 'datetime' })
  createdAt: Date & Opt = new Date();
}

/** A confirmed pair on the public carousel; its own copies of the files (carousel/{id}/…), removed when it drops off. */
@Entity({ tableName: 'booth_carousel' })
export class CarouselEntry {
  @PrimaryKey({ type: 'uuid' })
  id: string = randomUUID();

  @ManyToOne(() => BoothSubmission, { deleteRule: 'cascade' })
  submission!: BoothSubmission;

  @Property({ type: 'string', length: 300 })
  xrayKey!: string;

  @Property({ type: 'string', length: 300 })
  originalKey!: string;

  @Index()
  @Property({ type: 'datetime' })
  createdAt: Date & Opt = new Date();
}

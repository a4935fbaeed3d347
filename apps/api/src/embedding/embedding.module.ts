import { Module } from '@nestjs/common';
import { ImagesModule } from '../images/images.module.js';
import { ModelsModule } from '../models/models.module.js';
import { EmbeddingController } from './embedding.controller.js';
import { EmbeddingService } from './embedding.service.js';

/** GET /images/{id}/embedding: SAM image embeddings for decoding on the client, computed by a worker and stored. */
@Module({
  imports: [ImagesModule, ModelsModule],
  controllers: [EmbeddingController],
  providers: [EmbeddingService],
})
export class EmbeddingModule {}

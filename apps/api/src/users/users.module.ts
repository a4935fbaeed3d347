import { Module } from '@nestjs/common';
import { AuthModule } from '../auth/auth.module.js';
import { ImagesModule } from '../images/images.module.js';
import { UsersController } from './users.controller.js';
import { UsersService } from './users.service.js';

/** Users build on auth (its tokens, brute-force protection and password hashing); auth never imports users. */
@Module({ imports: [AuthModule, ImagesModule], controllers: [UsersController], providers: [UsersService] })
export class UsersModule {}

import { randomUUID } from 'node:crypto';
import { Body, Controller, Get, HttpCode, Post, Req } from '@nestjs/common';
import {
  ApiBadRequestResponse,
  ApiConflictResponse,
  ApiConsumes,
  ApiCreatedResponse,
  ApiNoContentResponse,
  ApiOkResponse,
  ApiOperation,
  ApiTags,
  ApiTooManyRequestsResponse,
  ApiUnauthorizedResponse,
} from '@nestjs/swagger';
import type { Request } from 'express';
import { Authenticated, CurrentPrincipal, type Principal, Public, StationAllowed } from '@aperture/common/auth.decorators.js';
import { ProblemDto } from '@aperture/common/problem.dto.js';
import { badRequest, unauthorized } from '@aperture/common/problem.js';
import { LoginDto, RefreshDto, RegisterDto, TokenRequestDto, TokenResponseDto, UserDto } from './auth.dto.js';
import { AuthService } from './auth.service.js';
import { AppPassport } from './strategies/app-passport.js';
import { clientIp } from './strategies/client-ip.js';

@ApiTags('auth')
@Controller('auth')
export class AuthController {
  constructor(
    private readonly auth: AuthService,
    private readonly passports: AppPassport,
  ) {}

  @Public()
  @Post('register')
  @ApiOperation({
    summary: 'Create an account',
    description: 'Username and e-mail must be unique; the password needs at least 8 characters and must differ from the username.',
  })
  @ApiCreatedResponse({ type: UserDto })
  @ApiBadRequestResponse({ type: ProblemDto, description: 'Invalid fields' })
  @ApiConflictResponse({ type: ProblemDto, description: 'Username or e-mail already taken' })
  async register(@Body() dto: RegisterDto): Promise<UserDto> {
    return UserDto.from(await this.auth.register(dto));
  }

  @Public()
  @Post('login')
  @HttpCode(200)
  @ApiOperation({ summary: 'Log in with username and password (JSON)', description: 'Returns an access token and a refresh token.' })
  @ApiOkResponse({ type: TokenResponseDto })
  @ApiBadRequestResponse({ type: ProblemDto, description: 'Invalid fields' })
  @ApiUnauthorizedResponse({ type: ProblemDto, description: 'Incorrect username or password' })
  @ApiTooManyRequestsResponse({ type: ProblemDto, description: 'Too many failed attempts; see Retry-After' })
  login(@Body() dto: LoginDto, @Req() req: Request): Promise<TokenResponseDto> {
    return this.signIn(req, 'local', dto.username);
  }

  @Public()
  @Post('token')
  @HttpCode(200)
  @ApiConsumes('application/x-www-form-urlencoded')
  @ApiOperation({
    summary: 'OAuth2 token endpoint (form)',
    description:
      "grant_type=password with username and password (Swagger UI's Authorize uses this); grant_type=refresh_token with refresh_token; " +
      "or only `password` for the booth's station principal when STATION_PASSWORD is configured.",
  })
  @ApiOkResponse({ type: TokenResponseDto })
  @ApiBadRequestResponse({ type: ProblemDto, description: 'Missing or invalid fields' })
  @ApiUnauthorizedResponse({ type: ProblemDto, description: 'Incorrect username or password' })
  @ApiTooManyRequestsResponse({ type: ProblemDto, description: 'Too many failed attempts; see Retry-After' })
  token(@Body() dto: TokenRequestDto, @Req() req: Request): Promise<TokenResponseDto> {
    if (dto.grant_type === 'refresh_token') {
      if (!dto.refresh_token)
        throw badRequest('refresh_token is required for grant_type=refresh_token', {
          errors: [{ field: 'refresh_token', messages: ['refresh_token is required'] }],
        });
      return this.auth.refresh(dto.refresh_token);
    }
    if (!dto.password) throw badRequest('password is required', { errors: [{ field: 'password', messages: ['password is required'] }] });
    if (!dto.username) return this.signIn(req, 'station');
    return this.signIn(req, 'local', dto.username);
  }

  /**
   * Signs in through a strategy once the body has passed its DTO (so a malformed body stays the DTO's 400): the
   * strategy's own refusals (401, 429) come through as they are; one that found nothing to check (passport-local with
   * an empty username or password) is the same counted 401 as a wrong password.
   */
  private async signIn(req: Request, strategy: 'local' | 'station', username = ''): Promise<TokenResponseDto> {
    const user = await this.passports.authenticate(strategy, req);
    if (!user) {
      if (strategy === 'station') throw unauthorized('Incorrect password');
      return this.auth.refuseLogin(username, clientIp(req));
    }
    return this.auth.issue(user, randomUUID());
  }

  @Public()
  @Post('refresh')
  @HttpCode(200)
  @ApiOperation({
    summary: 'Exchange a refresh token for a new token pair',
    description: 'The presented refresh token is rotated; reusing it later revokes the whole login.',
  })
  @ApiOkResponse({ type: TokenResponseDto })
  @ApiBadRequestResponse({ type: ProblemDto, description: 'Invalid fields' })
  @ApiUnauthorizedResponse({ type: ProblemDto, description: 'Invalid, expired or reused refresh token' })
  refresh(@Body() dto: RefreshDto): Promise<TokenResponseDto> {
    return this.auth.refresh(dto.refresh_token);
  }

  @Post('logout')
  @HttpCode(204)
  @Authenticated()
  @StationAllowed()
  @ApiOperation({ summary: 'Revoke a refresh token (log out this session)' })
  @ApiNoContentResponse({ description: 'Revoked (or already invalid)' })
  @ApiBadRequestResponse({ type: ProblemDto, description: 'Invalid fields' })
  async logout(@Body() dto: RefreshDto): Promise<void> {
    await this.auth.logout(dto.refresh_token);
  }

  @Post('logout-all')
  @HttpCode(204)
  @Authenticated()
  @ApiOperation({
    summary: 'Log out everywhere',
    description: 'Revokes every refresh token of the current user; access tokens issued so far stop working.',
  })
  @ApiNoContentResponse({ description: 'Done' })
  async logoutAll(@CurrentPrincipal() p: Principal): Promise<void> {
    await this.auth.logoutEverywhere(p.userId);
  }

  @Get('me')
  @Authenticated()
  @StationAllowed()
  @ApiOperation({ summary: 'The current user' })
  @ApiOkResponse({ type: UserDto })
  async me(@CurrentPrincipal() principal: Principal): Promise<UserDto> {
    return UserDto.from(await this.auth.currentUser(principal));
  }
}

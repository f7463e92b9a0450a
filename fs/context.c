/*
 * context.c - the context of the resolver and the engine (internal.h):
 * embedded in a mount (session.c), or on its own for the commands
 * (fs_ctx_open: resolving and fetching exactly as a mount does, with no
 * FUSE session).
 */
#include "internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void fs_config_defaults(struct fs_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->revision_ttl = FS_REVISION_TTL;
	cfg->listing_ttl = 600;
	cfg->negative_ttl = 30;
	cfg->read_timeout = FS_READ_TIMEOUT;
}

int ctx_init(struct fs_ctx *ctx, const struct fs_config *cfg)
{
	memset(ctx, 0, sizeof(*ctx));
	ctx->cfg = *cfg;
	pthread_mutex_init(&ctx->lock, NULL);
	pthread_cond_init(&ctx->listed, NULL);
	return 0;
}

void ctx_destroy(struct fs_ctx *ctx)
{
	misses_free(ctx);
	pthread_mutex_destroy(&ctx->lock);
	pthread_cond_destroy(&ctx->listed);
}

int ctx_engine_start(struct fs_ctx *ctx, engine_dropped_fn dropped, void *arg)
{
	struct engine_config cfg = {
		.hub = ctx->cfg.hub,
		.store = ctx->cfg.store,
		.read_timeout = ctx->cfg.read_timeout,
		.no_xet = ctx->cfg.no_xet,
		.dropped = dropped,
		.dropped_arg = arg,
		.external = external_open,
		.external_arg = ctx,
	};

	return engine_start(&ctx->eng, &cfg);
}

int fs_ctx_open(struct fs_ctx **out, const struct fs_config *cfg)
{
	struct fs_ctx *ctx = malloc(sizeof(*ctx));
	int rc;

	*out = NULL;
	if (!ctx)
		return -ENOMEM;
	rc = ctx_init(ctx, cfg);
	if (rc == 0)
		rc = ctx_engine_start(ctx, NULL, NULL);
	if (rc < 0) {
		ctx_destroy(ctx);
		free(ctx);
		return rc;
	}
	*out = ctx;
	return 0;
}

void fs_ctx_close(struct fs_ctx *ctx)
{
	if (!ctx)
		return;
	engine_stop(ctx->eng);
	ctx_destroy(ctx);
	free(ctx);
}

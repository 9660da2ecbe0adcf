/*
 * model/kvfile — a context's KV cache on disk: what lets a conversation
 * survive an unload.  model_ctx_save writes the positions in use;
 * model_ctx_restore maps them back into a fresh context of the same model,
 * after which prompt-prefix reuse (model_ctx_reuse) prefills only what a
 * request adds.
 *
 * File layout (little-endian):
 *   "DMKV"  u32 version (1)
 *   u64 identity      the caller's hash of what made the cache (model file
 *                     path, size, mtime, reservation, weight conversion),
 *                     with the LongRoPE factor set in use folded in: a file
 *                     made by another model or factor set is never used
 *   u32 regions       2 · layers (every layer's K, then every layer's V)
 *   u32 row_bytes     one position of one region (n_head_kv · head_dim F16)
 *   u32 n_vocab, n_past
 *   i32 tokens[n_past]
 *   regions × n_past × row_bytes   the cache rows, region by region
 *   u64 checksum      FNV-1a over every byte before it
 * A file that fails any check (magic, version, identity, layout, size,
 * token range, checksum) is refused with an error naming what failed and
 * leaves the context empty: never trusted.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "model/model.h"

#define KV_MAGIC "DMKV"
#define KV_VERSION 1u
#define KV_HEAD 28 /* magic, version, identity, regions, row_bytes, n_vocab (n_past follows) */

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
	const uint8_t *b = p;
	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 1099511628211ull;
	return h;
}

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static int32_t regions_of(const struct model_ctx *c)
{
	return 2 * (c->m->hp.encoder ? 1 : c->m->hp.n_layer);
}

static size_t row_bytes_of(const struct model_ctx *c)
{
	return (size_t)c->m->hp.n_head_kv * (size_t)c->m->hp.head_dim * sizeof(uint16_t);
}

/* The identity as written: the caller's, and which of LongRoPE's factor
 * sets computed the positions (a context whose n_ctx picks the other set
 * cannot use them). */
static uint64_t identity_of(const struct model_ctx *c, uint64_t identity)
{
	return c->m->rope_factors_long && c->rope_factors == c->m->rope_factors_long &&
			       c->m->rope_factors_long != c->m->rope_factors_short
		       ? identity ^ 0x9e3779b97f4a7c15ull
		       : identity;
}

/* Writes all of p[0..n) to fd, folding it into *h. */
static int write_all(int fd, const void *p, size_t n, uint64_t *h)
{
	const uint8_t *b = p;
	*h = fnv(*h, p, n);
	while (n) {
		ssize_t w = write(fd, b, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		b += w;
		n -= (size_t)w;
	}
	return 0;
}

static int read_all(int fd, void *p, size_t n, uint64_t *h)
{
	uint8_t *b = p;
	size_t left = n;
	while (left) {
		ssize_t r = read(fd, b, left);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		b += r;
		left -= (size_t)r;
	}
	if (h)
		*h = fnv(*h, p, n);
	return 0;
}

int model_ctx_save(const struct model_ctx *c, const char *path, uint64_t identity, struct dm_err *err)
{
	const int32_t regions = regions_of(c);
	const size_t rb = row_bytes_of(c), region = rb * (size_t)c->n_ctx_max;
	uint8_t head[KV_HEAD];
	uint64_t h = 1469598103934665603ull;
	char tmp[4200];
	int fd;

	identity = identity_of(c, identity);
	if (c->n_past < 1)
		return dm_err_set(err, DM_EINVAL, "%s: nothing cached to save", path);
	if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
		return dm_err_set(err, DM_EINVAL, "%s: path too long", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return dm_err_set(err, DM_EIO, "%s: %s", tmp, strerror(errno));
	memcpy(head, KV_MAGIC, 4);
	put32(head + 4, KV_VERSION);
	put32(head + 8, (uint32_t)identity);
	put32(head + 12, (uint32_t)(identity >> 32));
	put32(head + 16, (uint32_t)regions);
	put32(head + 20, (uint32_t)rb);
	put32(head + 24, (uint32_t)c->m->hp.n_vocab);
	if (write_all(fd, head, sizeof head, &h))
		goto io;
	put32(head, (uint32_t)c->n_past);
	if (write_all(fd, head, 4, &h) ||
	    write_all(fd, c->tokens, (size_t)c->n_past * sizeof *c->tokens, &h))
		goto io;
	for (int32_t r = 0; r < regions; r++)
		if (write_all(fd, (const uint8_t *)c->k + (size_t)r * region, (size_t)c->n_past * rb, &h))
			goto io;
	{
		uint8_t t[8];
		uint64_t sum = h;
		put32(t, (uint32_t)sum);
		put32(t + 4, (uint32_t)(sum >> 32));
		if (write_all(fd, t, 8, &h))
			goto io;
	}
	if (close(fd) != 0) {
		fd = -1;
		goto io;
	}
	if (rename(tmp, path) != 0) {
		unlink(tmp);
		return dm_err_set(err, DM_EIO, "%s: %s", path, strerror(errno));
	}
	return 0;
io:
	{
		int e = errno ? errno : EIO;
		if (fd >= 0)
			close(fd);
		unlink(tmp);
		return dm_err_set(err, DM_EIO, "%s: %s", tmp, strerror(e));
	}
}

int model_ctx_restore(struct model_ctx *c, const char *path, uint64_t identity, struct dm_err *err)
{
	const int32_t regions = regions_of(c);
	const size_t rb = row_bytes_of(c), region = rb * (size_t)c->n_ctx_max;
	uint8_t head[KV_HEAD], t[8];
	uint64_t h = 1469598103934665603ull, want;
	uint32_t n_past;
	struct stat st;
	int fd, rc;

	identity = identity_of(c, identity);
	model_ctx_reset(c);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return dm_err_set(err, errno == ENOENT ? DM_ENOTFOUND : DM_EIO, "%s: %s", path, strerror(errno));
	if (fstat(fd, &st) != 0 || read_all(fd, head, sizeof head, &h) || read_all(fd, t, 4, &h)) {
		rc = dm_err_set(err, DM_EFORMAT, "%s: shorter than a KV cache header", path);
		goto out;
	}
	n_past = get32(t);
	if (memcmp(head, KV_MAGIC, 4) || get32(head + 4) != KV_VERSION) {
		rc = dm_err_set(err, DM_EFORMAT, "%s: not a dormant KV cache file of version %u", path, KV_VERSION);
		goto out;
	}
	if ((get32(head + 8) | (uint64_t)get32(head + 12) << 32) != identity) {
		rc = dm_err_set(err, DM_EFORMAT, "%s: made for another model file or context (stale)", path);
		goto out;
	}
	if (get32(head + 16) != (uint32_t)regions || get32(head + 20) != (uint32_t)rb ||
	    get32(head + 24) != (uint32_t)c->m->hp.n_vocab) {
		rc = dm_err_set(err, DM_EFORMAT, "%s: layout differs from the model's (%u regions of %u-byte rows)", path,
				get32(head + 16), get32(head + 20));
		goto out;
	}
	if (n_past < 1 || n_past > (uint32_t)c->n_ctx_max) {
		rc = dm_err_set(err, DM_EFORMAT, "%s: %u positions do not fit a context of %d", path, n_past,
				c->n_ctx_max);
		goto out;
	}
	if ((uint64_t)st.st_size != KV_HEAD + 4 + (uint64_t)n_past * 4 + (uint64_t)regions * n_past * rb + 8) {
		rc = dm_err_set(err, DM_EFORMAT, "%s: %lld bytes, the header implies %llu", path, (long long)st.st_size,
				(unsigned long long)(KV_HEAD + 4 + (uint64_t)n_past * 4 + (uint64_t)regions * n_past * rb + 8));
		goto out;
	}
	if (read_all(fd, c->tokens, (size_t)n_past * sizeof *c->tokens, &h)) {
		rc = dm_err_set(err, DM_EFORMAT, "%s: truncated", path);
		goto out;
	}
	for (uint32_t i = 0; i < n_past; i++)
		if (c->tokens[i] < 0 || c->tokens[i] >= c->m->hp.n_vocab) {
			rc = dm_err_set(err, DM_EFORMAT, "%s: token %u is out of range", path, i);
			goto out;
		}
	if (n_past > (uint32_t)c->n_touched)
		c->n_touched = (int32_t)n_past; /* the rows below are written now */
	for (int32_t r = 0; r < regions; r++)
		if (read_all(fd, (uint8_t *)c->k + (size_t)r * region, (size_t)n_past * rb, &h)) {
			rc = dm_err_set(err, DM_EFORMAT, "%s: truncated", path);
			goto out;
		}
	want = h;
	if (read_all(fd, t, 8, NULL) || (get32(t) | (uint64_t)get32(t + 4) << 32) != want) {
		rc = dm_err_set(err, DM_EFORMAT, "%s: checksum mismatch (corrupt)", path);
		goto out;
	}
	c->n_past = (int32_t)n_past;
	rc = 0;
out:
	close(fd);
	return rc;
}

/* cli/peer — see cli_peer.c. */
#ifndef DM_CLI_PEER_H
#define DM_CLI_PEER_H

#include "base/err.h"
#include "cli/cli.h"

/* One --vs program and its --vs-args. */
struct cli_peer {
	const char *path;     /* borrowed (argv) */
	char name[192];       /* the program's file name and its extra words, for tables and errors */
	char words_buf[512];  /* the extra words, split in place */
	char *words[32];
	int n_words;
};

/* Fills *p for the program at path with extra arguments (NULL: none):
 * DM_ENOTFOUND / DM_EINVAL when path is not an executable file or the
 * extra words do not fit. */
int cli_peer_init(struct cli_peer *p, const char *path, const char *extra, struct dm_err *err);

/* Runs the peer once on model (-p n_prompt -n n_gen -t threads -r 1 -o
 * json + its words; with depth > 0, -n 0 -gp depth,n_gen in place of -n)
 * and reads its prompt and generation tokens per second into *pp and *tg
 * (a test of 0 tokens is not looked for).  Killed after
 * timeout_s.  Errors (one line naming the peer): cannot start it, killed,
 * non-zero exit (with the last line of its stderr), output that is not
 * llama-bench JSON or lacks a result. */
int cli_peer_run(const struct cli_peer *p, const char *model, long n_prompt, long n_gen, long depth,
		 int threads, double timeout_s, double *pp, double *tg, struct dm_err *err);

#endif

/*
 * xetlocal.h - the store's side of a read through the Xet CAS (hub.h,
 * struct hub_xet_local), for the read engine: where the chunks of a read
 * landed is recorded in the index (db.h, "Xet chunks"), and a term whose
 * chunks a complete blob of the store holds is read from that blob's file
 * instead of fetched.  The engine still verifies the file it fills as a
 * whole, so a wrong local copy cannot give a verified wrong file.
 */
#ifndef HUBFS_FS_XETLOCAL_H
#define HUBFS_FS_XETLOCAL_H

#include <stdbool.h>

#include "db.h"
#include "hub.h"

/* The blob a Xet read fills; hub_xet_file.local_arg.  Read-only once set:
   the hooks run on several of the reader's threads at once. */
struct xetlocal {
	struct db_store *store; /* borrowed: outlives the reads */
	char etag[65];		/* the blob the read fills */
};

/*
 * The hooks for hub_xet_file.local: placed() records runs for xl->etag;
 * with copy, copy() answers terms from complete blobs.  Give copy false
 * for a blob whose last copy failed its check: nothing local is then
 * trusted for it, and it is fetched whole.
 */
const struct hub_xet_local *xetlocal_ops(bool copy);

#endif /* HUBFS_FS_XETLOCAL_H */

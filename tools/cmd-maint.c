/* hyperfile admin command: space and verification.
 *
 *   gc, du, fsck
 *
 * Collecting and compacting segments, saying what keeps space, and
 * verifying every reachable structure.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "fsck.h"
#include "gc.h"
#include "history.h"
#include "log.h"
#include "objstore.h"
#include "volume.h"
#include "tool.h"

static void
hf_tool_gc_deleted (void *opaque, uint64_t seq, uint64_t bytes,
                    const char *why)
{
  (void) opaque;
  if (!hf_tool_json && hf_tool_dry_run)
    printf ("would delete segment %" PRIu64 " (%" PRIu64 " bytes, %s)\n",
            seq, bytes, why);
}

/* What keeps space (gc, du): one line per root, or a JSON array
 * (opaque). */
static void
hf_tool_gc_pin (void *opaque, const char *kind, const char *name,
                uint64_t seq, uint64_t since_ns, uint64_t bytes, bool orphan)
{
  json_object *a = opaque;
  char ts[40];

  if (a) {
    json_object *o = hf_j_obj ();

    hf_j_str (o, "kind", kind);
    hf_j_str (o, "name", name);
    hf_j_u64 (o, "seq", seq);
    if (strcmp (kind, "window") == 0) {
      hf_history_format_time (since_ns, ts, sizeof ts);
      hf_j_str (o, "since", ts);
    }
    hf_j_u64 (o, "bytes", bytes);
    hf_j_bool (o, "orphan", orphan);
    json_object_array_add (a, o);
    return;
  }
  if (strcmp (kind, "head") == 0)
    printf ("kept by the head: %" PRIu64 " bytes\n", bytes);
  else if (strcmp (kind, "window") == 0) {
    hf_history_format_time (since_ns, ts, sizeof ts);
    printf ("kept by the retain window (points since %s): %" PRIu64
            " bytes more\n", ts, bytes);
  }
  else if (strcmp (kind, "snapshot") == 0)
    printf ("kept by snapshot %s (segment %" PRIu64 "): %" PRIu64
            " bytes more\n", name, seq, bytes);
  else
    printf ("kept by clone %s (base segment %" PRIu64 "): %" PRIu64
            " bytes more%s\n", name, seq, bytes, orphan
            ? " (orphan: the clone is gone; hyperfile children --prune)"
            : "");
}

int
hf_tool_gc (int argc, char **argv)
{
  json_object *pins = hf_tool_json ? hf_j_arr () : NULL;
  struct hf_gc_options go = {
    .retain_ns = hf_tool_retain_ns, .grace_ns = hf_tool_grace_ns,
    .dry_run = hf_tool_dry_run, .compact = !hf_tool_dry_run,
    .cfg = &hf_tool_s3, .on_delete = hf_tool_gc_deleted,
    .on_pin = hf_tool_gc_pin, .opaque = pins };
  struct hf_gc_report rep;
  struct hf_file *w = NULL;
  struct hf_objstore *s;
  char *prefix;
  int r;

  (void) argc;
  if ((r = hf_tool_store (argv[0], &s, &prefix)) != 0) {
    json_object_put (pins);
    return r;
  }
  /* Compaction writes through the writer: only when no server holds
   * the volume (then its own gc=on compacts). */
  if (!hf_tool_dry_run) {
    r = hf_tool_writer_open (argv[0], s, prefix, HF_TOOL_W_BATCH, &w);
    if (r == EXIT_BUSY) {
      fprintf (stderr, "hyperfile: gc: a writer holds %s: collecting "
               "without compaction (its gc=on compacts)\n", argv[0]);
      w = NULL;
    }
    else if (r) {
      hf_objstore_close (s);
      free (prefix);
      json_object_put (pins);
      return r;
    }
  }
  /* The engine's: hf_file_gc has no callbacks, grace or full report. */
  r = hf_gc_run (s, prefix, w ? hf_file_volume (w) : NULL, &go, &rep);
  if (w && hf_file_close (w) != 0 && r == 0)
    r = EIO;
  hf_objstore_close (s);
  free (prefix);
  if (r)
    json_object_put (pins);
  if (r == ENOENT)
    return EXIT_NOVOLUME;
  if (r) {
    fprintf (stderr, "hyperfile: gc: %s: %s\n", argv[0], strerror (r));
    return EXIT_FAILURE;
  }
  if (hf_tool_json) {
    json_object *o = hf_j_obj ();

    json_object_object_add (o, "kept_by", pins);
    hf_j_u64 (o, "orphan_clones", rep.orphan_clones);

    hf_j_bool (o, "dry_run", hf_tool_dry_run);
    hf_j_u64 (o, "head", rep.head_seq);
    hf_j_u64 (o, "segments", rep.segments);
    hf_j_u64 (o, "bytes", rep.bytes);
    hf_j_u64 (o, "reachable_segments", rep.reachable_segments);
    hf_j_u64 (o, "reachable_bytes", rep.reachable_bytes);
    hf_j_u64 (o, "live_bytes", rep.live_bytes);
    hf_j_u64 (o, "deleted_segments", rep.deleted_segments);
    hf_j_u64 (o, "deleted_bytes", rep.deleted_bytes);
    hf_j_u64 (o, "orphans", rep.orphans);
    hf_j_u64 (o, "kept_young", rep.kept_young);
    hf_j_u64 (o, "compacted_segments", rep.compacted_segments);
    hf_j_u64 (o, "relocated_blocks", rep.relocated_blocks);
    hf_j_u64 (o, "leases_deleted", rep.leases_deleted);
    hf_j_print (o, stdout);
  }
  else
    printf ("head segment %" PRIu64 ": %" PRIu64 " segments, %" PRIu64
            " bytes; reachable %" PRIu64 " (%" PRIu64 " bytes); head uses %"
            PRIu64 " bytes\n%s %" PRIu64 " segments, %" PRIu64
            " bytes reclaimable%s (%" PRIu64 " orphans; %" PRIu64
            " unreachable kept for the grace period)\n"
            "compacted %" PRIu64 " segments (%" PRIu64 " blocks moved)\n",
            rep.head_seq, rep.segments, rep.bytes, rep.reachable_segments,
            rep.reachable_bytes, rep.live_bytes,
            hf_tool_dry_run ? "would delete" : "deleted",
            rep.deleted_segments, rep.deleted_bytes,
            hf_tool_dry_run ? "" : " and reclaimed", rep.orphans,
            rep.kept_young, rep.compacted_segments, rep.relocated_blocks);
  return EXIT_SUCCESS;
}

static void
hf_tool_fsck_problem (void *opaque, const char *object, uint64_t offset,
                      const char *what)
{
  json_object *problems = opaque;

  if (hf_tool_json) {
    json_object *o = hf_j_obj ();

    hf_j_str (o, "object", object);
    hf_j_u64 (o, "offset", offset);
    hf_j_str (o, "problem", what);
    json_object_array_add (problems, o);
  }
  else
    printf ("DAMAGED %s offset %" PRIu64 ": %s\n", object, offset, what);
}

static double hf_tool_fsck_t0;

static void
hf_tool_fsck_progress (void *opaque, uint64_t done, uint64_t total)
{
  (void) opaque;
  hf_tool_progress ("fsck", done, total, hf_tool_fsck_t0, done == total);
}

int
hf_tool_fsck (int argc, char **argv)
{
  json_object *problems = hf_tool_json ? hf_j_arr () : NULL;
  /* Without --retain: the head, snapshots and clone bases only (fsck
   * cannot know the window GC used; a shorter one collected more). */
  struct hf_fsck_options fo = {
    .retain_ns = hf_tool_retain_set ? hf_tool_retain_ns : 0,
    .grace_ns = hf_tool_retain_set ? hf_tool_grace_ns : 0,
                                .cfg = &hf_tool_s3,
                                .fn = hf_tool_fsck_problem,
                                .opaque = problems,
                                .progress = hf_tool_fsck_progress };
  struct hf_fsck_report rep;
  struct hf_objstore *s;
  char *prefix;
  int r;

  (void) argc;
  if ((r = hf_tool_store (argv[0], &s, &prefix)) != 0) {
    json_object_put (problems);
    return r;
  }
  hf_tool_fsck_t0 = hf_tool_now ();
  r = hf_fsck_run (s, prefix, &fo, &rep);
  hf_objstore_close (s);
  free (prefix);
  if (hf_tool_json) {
    json_object *o = hf_j_obj ();

    json_object_object_add (o, "problems_found", problems);
    hf_j_bool (o, "ok", r == 0 && rep.problems == 0);
    hf_j_u64 (o, "problems", rep.problems);
    hf_j_u64 (o, "head", rep.head_seq);
    hf_j_u64 (o, "segments", rep.segments);
    hf_j_u64 (o, "bytes", rep.bytes);
    hf_j_u64 (o, "data_blocks", rep.data_blocks);
    hf_j_u64 (o, "nodes", rep.nodes);
    hf_j_u64 (o, "points", rep.points);
    hf_j_u64 (o, "snapshots", rep.snapshots);
    hf_j_u64 (o, "clones", rep.clones);
    hf_j_u64 (o, "orphan_clones", rep.orphan_clones);
    hf_j_u64 (o, "checkpoints", rep.checkpoints);
    hf_j_u64 (o, "tree_nodes", rep.tree_nodes);
    hf_j_u64 (o, "entries", rep.entries);
    hf_j_u64 (o, "orphans", rep.orphans);
    hf_j_u64 (o, "incomplete", rep.incomplete);
    hf_j_print (o, stdout);
  }
  if (r == ENOENT)
    return EXIT_NOVOLUME;
  if (r) {
    fprintf (stderr, "hyperfile: fsck: %s: %s\n", argv[0], strerror (r));
    return EXIT_FAILURE;
  }
  if (!hf_tool_json)
    printf ("%s: %" PRIu64 " segments (%" PRIu64 " bytes, %" PRIu64
            " data blocks, %" PRIu64 " index nodes), %" PRIu64
            " points, %" PRIu64 " snapshots, %" PRIu64 " clones, %" PRIu64
            " checkpoints (%" PRIu64 " nodes, %" PRIu64 " entries) "
            "verified: %s (%" PRIu64 " problems)\n", argv[0], rep.segments,
            rep.bytes, rep.data_blocks, rep.nodes, rep.points,
            rep.snapshots, rep.clones, rep.checkpoints, rep.tree_nodes,
            rep.entries, rep.problems ? "DAMAGED" : "clean", rep.problems);
  if (!hf_tool_json && rep.incomplete)
    printf ("%s: %" PRIu64 " incomplete upload(s) (never committed; GC "
            "removes them)\n", argv[0], rep.incomplete);
  return rep.problems ? EXIT_DAMAGED : EXIT_SUCCESS;
}

/* Bytes mapped at point seq (0: the head) of the volume at url, in s. */
static int
hf_tool_live_bytes (const char *url, struct hf_objstore *s,
                    const char *prefix, uint64_t seq, uint64_t *out)
{
  struct hf_file *f;
  int r;

  *out = 0;
  if ((r = hf_tool_reader_open (url, s, prefix, seq, &f)) != 0)
    return r;
  r = hf_file_extents (f, hf_file_size (f), 0, hf_tool_count_mapped, out);
  hf_file_close (f);
  return r;
}

/* Space: what the volume holds in the store, what its head and each
 * snapshot map, and what gc --retain would reclaim now (a dry run). */
int
hf_tool_du (int argc, char **argv)
{
  const char *url = argv[0];
  json_object *pins = hf_tool_json ? hf_j_arr () : NULL;
  struct hf_gc_options go = {
    .retain_ns = hf_tool_retain_ns, .grace_ns = hf_tool_grace_ns,
    .dry_run = true, .cfg = &hf_tool_s3, .on_pin = hf_tool_gc_pin,
    .opaque = pins };
  struct hf_tool_keys k = { 0 };
  struct hf_snapshot *sn = NULL;
  struct hf_gc_report rep;
  struct hf_objstore *s;
  uint64_t head_live, *snap_live = NULL;
  size_t nsn = 0, i;
  char *prefix;
  int r, ret = EXIT_FAILURE;

  (void) argc;
  if ((r = hf_tool_store (url, &s, &prefix)) != 0) {
    json_object_put (pins);
    return r;
  }
  r = hf_tool_live_bytes (url, s, prefix, 0, &head_live);
  if (r) {
    ret = r == ENOENT ? EXIT_NOVOLUME : EXIT_FAILURE;
    goto out;                   /* the volume said why */
  }
  r = hf_objstore_list_retry (s, prefix, NULL, hf_tool_delete_key, &k,
                              hf_tool_keys_restart);
  if (r == 0)
    r = hf_snapshot_list (s, prefix, &sn, &nsn);
  if (r == 0 && nsn && (snap_live = calloc (nsn, sizeof *snap_live)) == NULL)
    r = ENOMEM;
  for (i = 0; r == 0 && i < nsn; i++)
    r = hf_tool_live_bytes (url, s, prefix, sn[i].seq, &snap_live[i]);
  if (r == 0)
    r = hf_gc_run (s, prefix, NULL, &go, &rep);
  if (r) {
    fprintf (stderr, "hyperfile: du: %s: %s\n", url, strerror (r));
    goto out;
  }
  if (hf_tool_json) {
    json_object *o = hf_j_obj (), *a = hf_j_arr ();

    hf_j_str (o, "url", url);
    hf_j_u64 (o, "store_objects", k.n);
    hf_j_u64 (o, "store_bytes", k.bytes);
    hf_j_u64 (o, "head_seq", rep.head_seq);
    hf_j_u64 (o, "head_live_bytes", head_live);
    for (i = 0; i < nsn; i++) {
      json_object *e = hf_j_obj ();

      hf_j_str (e, "name", sn[i].name);
      hf_j_u64 (e, "seq", sn[i].seq);
      hf_j_u64 (e, "live_bytes", snap_live[i]);
      json_object_array_add (a, e);
    }
    json_object_object_add (o, "snapshots", a);
    hf_j_u64 (o, "reachable_bytes", rep.reachable_bytes);
    hf_j_u64 (o, "reclaimable_bytes", rep.deleted_bytes);
    hf_j_u64 (o, "reclaimable_segments", rep.deleted_segments);
    json_object_object_add (o, "kept_by", pins);
    pins = NULL;
    hf_j_u64 (o, "orphan_clones", rep.orphan_clones);
    hf_j_print (o, stdout);
  }
  else {
    printf ("store:        %" PRIu64 " bytes in %zu objects\n"
            "head:         %" PRIu64 " bytes mapped (segment %" PRIu64 ")\n",
            k.bytes, k.n, head_live, rep.head_seq);
    for (i = 0; i < nsn; i++)
      printf ("snapshot %s: %" PRIu64 " bytes mapped (segment %" PRIu64
              ")\n", sn[i].name, snap_live[i], sn[i].seq);
    printf ("reachable:    %" PRIu64 " bytes in segments the retained "
            "points need\n"
            "reclaimable:  %" PRIu64 " bytes in %" PRIu64 " segments (gc "
            "--retain as given now)\n", rep.reachable_bytes,
            rep.deleted_bytes, rep.deleted_segments);
  }
  ret = EXIT_SUCCESS;
 out:
  for (i = 0; i < k.n; i++)
    free (k.keys[i]);
  free (k.keys);
  free (sn);
  free (snap_live);
  json_object_put (pins);
  hf_objstore_close (s);
  free (prefix);
  return ret;
}

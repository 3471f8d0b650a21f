/* hyperfile admin command: points in time.
 *
 *   ls, snapshot create|list|delete, rollback
 *
 * Listing a volume's points, naming them, and making an older one the
 * head again.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "history.h"
#include "log.h"
#include "objstore.h"
#include "volume.h"
#include "tool.h"

int
hf_tool_ls (int argc, char **argv)
{
  struct hf_tool_vol t;
  const struct hf_point *p;
  struct hf_snapshot *sn = NULL;
  json_object *jo = NULL, *jpts = NULL;
  size_t n, nsn = 0, i, j;
  int r;

  (void) argc;
  if ((r = hf_tool_vol_open ("ls", argv[0], &t)) != 0)
    return r;
  r = hf_history_points (t.h, &p, &n);
  if (r == 0)
    r = hf_snapshot_list (t.s, t.prefix, &sn, &nsn);
  if (r) {
    fprintf (stderr, "hyperfile: ls: %s: %s\n", argv[0], strerror (r));
    hf_tool_vol_close (&t);
    return EXIT_FAILURE;
  }
  if (hf_tool_json) {
    jo = hf_j_obj ();
    jpts = hf_j_arr ();
    hf_j_str (jo, "url", argv[0]);
    hf_j_u64 (jo, "head", hf_history_head (t.h));
    json_object_object_add (jo, "points", jpts);
  }
  else
    printf ("%-10s %-30s %-20s %-14s %s\n", "SEQ", "TIME (UTC)", "FLAGS",
            "SIZE", "SNAPSHOTS");
  for (i = 0; i < n; i++) {
    char ts[40], flags[40];
    bool first = true;

    hf_history_format_time (p[i].timestamp_ns, ts, sizeof ts);
    snprintf (flags, sizeof flags, "%s%s%s",
              p[i].flags & HF_SH_ROLLBACK ? "rollback," : "",
              p[i].flags & HF_SH_CHECKPOINT ? "checkpoint," : "",
              p[i].inherited ? "parent," : "");
    if (flags[0])
      flags[strlen (flags) - 1] = '\0';
    else
      strcpy (flags, "-");
    if (hf_tool_json) {
      json_object *pt = hf_j_obj (), *names = hf_j_arr ();

      hf_j_u64 (pt, "seq", p[i].seq);
      hf_j_u64 (pt, "parent", p[i].parent_seq);
      hf_j_str (pt, "time", ts);
      hf_j_u64 (pt, "timestamp_ns", p[i].timestamp_ns);
      hf_j_u64 (pt, "size", p[i].volume_size);
      hf_j_bool (pt, "checkpoint", p[i].flags & HF_SH_CHECKPOINT);
      hf_j_bool (pt, "rollback", p[i].flags & HF_SH_ROLLBACK);
      hf_j_bool (pt, "inherited", p[i].inherited);
      for (j = 0; j < nsn; j++)
        if (sn[j].seq == p[i].seq)
          json_object_array_add (names, hf_j_new
                                 (json_object_new_string (sn[j].name)));
      json_object_object_add (pt, "snapshots", names);
      json_object_array_add (jpts, pt);
    }
    else {
      printf ("%-10" PRIu64 " %-30s %-20s %-14" PRIu64 " ", p[i].seq, ts,
              flags, p[i].volume_size);
      for (j = 0; j < nsn; j++)
        if (sn[j].seq == p[i].seq) {
          printf ("%s%s", first ? "" : ",", sn[j].name);
          first = false;
        }
      printf ("%s\n", first ? "-" : "");
    }
  }
  if (hf_tool_json)
    hf_j_print (jo, stdout);
  free (sn);
  hf_tool_vol_close (&t);
  return EXIT_SUCCESS;
}

/* A snapshot name as the library accepts it: also not all digits,
 * which would read as a segment number.  Said here, so that such a
 * name is a usage error (2), not "no such snapshot" (6). */
static bool
hf_tool_snapshot_name_ok (const char *cmd, const char *name)
{
  if (hf_snapshot_name_valid (name) && strspn (name, "0123456789")
      != strlen (name))
    return true;
  fprintf (stderr, "hyperfile: %s: '%s' is not a valid snapshot name: "
           "1..128 characters of [A-Za-z0-9._-], not starting with '.', "
           "not only digits\n", cmd, name);
  return false;
}

static int
hf_tool_snapshot_create (const char *url, const char *name)
{
  struct hf_tool_vol t;
  struct hf_snapshot sn;
  uint64_t seq = 0;
  char ts[40];
  int r;

  if (!hf_tool_snapshot_name_ok ("snapshot create", name))
    return EXIT_USAGE;
  if (hf_tool_at && hf_history_check_at (hf_tool_at) != 0)
    return EXIT_USAGE;
  if ((r = hf_tool_vol_open ("snapshot create", url, &t)) != 0)
    return r;
  if (hf_tool_at &&
      (r = hf_tool_resolve ("snapshot create", &t, hf_tool_at, &seq)) != 0) {
    hf_tool_vol_close (&t);
    return r;
  }
  r = hf_snapshot_create (t.h, name, seq, &sn);
  hf_tool_vol_close (&t);
  if (r)                        /* history said why; the name is valid */
    return r == EEXIST ? EXIT_EXISTS : r == EINVAL ? EXIT_NOPOINT
      : EXIT_FAILURE;
  hf_history_format_time (sn.timestamp_ns, ts, sizeof ts);
  if (hf_tool_json) {
    json_object *o = hf_j_obj ();

    hf_j_str (o, "name", name);
    hf_j_u64 (o, "seq", sn.seq);
    hf_j_str (o, "time", ts);
    hf_j_print (o, stdout);
  }
  else
    printf ("snapshot %s = segment %" PRIu64 " (%s)\n", name, sn.seq, ts);
  return EXIT_SUCCESS;
}

static int
hf_tool_snapshot_list (const char *url)
{
  struct hf_objstore *s;
  struct hf_snapshot *sn = NULL;
  json_object *ja = NULL;
  char *prefix;
  size_t n = 0, i;
  int r;

  if ((r = hf_tool_store (url, &s, &prefix)) != 0)
    return r;
  r = hf_snapshot_list (s, prefix, &sn, &n);
  hf_objstore_close (s);
  free (prefix);
  if (r)
    return EXIT_FAILURE;        /* history said why */
  if (hf_tool_json)
    ja = hf_j_arr ();
  else
    printf ("%-30s %-10s %-30s %s\n", "NAME", "SEQ", "TIME (UTC)",
            "CREATED (UTC)");
  for (i = 0; i < n; i++) {
    char ts[40], cr[40];

    hf_history_format_time (sn[i].timestamp_ns, ts, sizeof ts);
    hf_history_format_time (sn[i].created_ns, cr, sizeof cr);
    if (hf_tool_json) {
      json_object *o = hf_j_obj ();

      hf_j_str (o, "name", sn[i].name);
      hf_j_u64 (o, "seq", sn[i].seq);
      hf_j_str (o, "time", ts);
      hf_j_str (o, "created", cr);
      json_object_array_add (ja, o);
    }
    else
      printf ("%-30s %-10" PRIu64 " %-30s %s\n", sn[i].name, sn[i].seq, ts,
              cr);
  }
  if (hf_tool_json)
    hf_j_print (ja, stdout);
  free (sn);
  return EXIT_SUCCESS;
}

static int
hf_tool_snapshot_delete (const char *url, const char *name)
{
  struct hf_objstore *s;
  char *prefix;
  int r;

  if (!hf_tool_snapshot_name_ok ("snapshot delete", name))
    return EXIT_USAGE;
  if ((r = hf_tool_store (url, &s, &prefix)) != 0)
    return r;
  r = hf_snapshot_delete (s, prefix, name);
  hf_objstore_close (s);
  free (prefix);
  if (r)                        /* history said why */
    return r == ENOENT ? EXIT_NOPOINT : EXIT_FAILURE;
  if (hf_tool_json) {
    json_object *o = hf_j_obj ();

    hf_j_str (o, "name", name);
    hf_j_bool (o, "deleted", true);
    hf_j_print (o, stdout);
  }
  else
    printf ("deleted snapshot %s\n", name);
  return EXIT_SUCCESS;
}

int
hf_tool_snapshot (int argc, char **argv)
{
  const char *sub = argv[0];

  if (strcmp (sub, "create") == 0 && argc == 3)
    return hf_tool_snapshot_create (argv[1], argv[2]);
  if (strcmp (sub, "list") == 0 && argc == 2)
    return hf_tool_snapshot_list (argv[1]);
  if (strcmp (sub, "delete") == 0 && argc == 3)
    return hf_tool_snapshot_delete (argv[1], argv[2]);
  fprintf (stderr, "hyperfile: usage: snapshot create URL NAME [--at POINT]"
           " | snapshot list URL | snapshot delete URL NAME\n");
  return EXIT_USAGE;
}

int
hf_tool_rollback (int argc, char **argv)
{
  struct hf_tool_vol t;
  struct hf_file *f;
  uint64_t seq, new_seq = 0;
  int r;

  (void) argc;
  if (hf_history_check_at (argv[1]) != 0)
    return EXIT_USAGE;
  if ((r = hf_tool_vol_open ("rollback", argv[0], &t)) != 0)
    return r;
  /* The writer lease first: nobody commits between the check of the
   * point and the rollback segment.  Past a damaged or lost newest
   * segment too: rollback is the explicit way out (the open commits a
   * segment above it). */
  r = hf_tool_writer_open (argv[0], t.s, t.prefix,
                           HF_TOOL_W_BATCH | HF_TOOL_W_OLDER_HEAD, &f);
  if (r) {
    hf_tool_vol_close (&t);
    return r;
  }
  /* Re-read the history now that the head cannot move. */
  hf_history_close (t.h);
  t.h = NULL;
  r = hf_history_open (t.s, t.prefix, &hf_tool_s3, &t.h);
  if (r == 0)
    r = hf_tool_resolve ("rollback", &t, argv[1], &seq);
  else
    r = EXIT_FAILURE;
  if (r == 0 && seq == hf_history_head (t.h)) {
    fprintf (stderr, "hyperfile: rollback: %s is already the head "
             "(segment %" PRIu64 ")\n", argv[1], seq);
    r = EXIT_NOPOINT;
  }
  /* The engine's rollback to the seq resolved above (for the exit
   * codes and messages): hf_file_rollback would resolve it again. */
  if (r == 0 && hf_volume_rollback (hf_file_volume (f), seq, &new_seq) != 0)
    r = EXIT_FAILURE;           /* volume said why */
  if (hf_file_close (f) != 0 && r == 0)
    r = EXIT_FAILURE;
  hf_tool_vol_close (&t);
  if (r)
    return r;
  if (hf_tool_json) {
    json_object *jo = hf_j_obj ();

    hf_j_u64 (jo, "rolled_back_to", seq);
    hf_j_u64 (jo, "head", new_seq);
    hf_j_print (jo, stdout);
  }
  else
    printf ("rolled back to segment %" PRIu64 ": the head is now segment %"
            PRIu64 " (segments in between stay readable with at=)\n",
            seq, new_seq);
  return EXIT_SUCCESS;
}

/*
 * streams/activity_announce.c
 *		Announcing (activity, entity) cursors to the workers when the
 *		transaction that made them due commits.
 *
 * Whoever changes a cursor outside the workers (choreo_start_activity,
 * choreo_reset_activity, choreo_run_activity, choreo_resume_activity,
 * choreo_create_activity) announces it here, and the workers are woken
 * for it at commit, never before: a worker that looked at the cursor
 * while this transaction held it (it skips locked cursors) looks again.
 * Key 0 asks the workers to look through every due cursor.
 */
#include "postgres.h"

#include "utils/memutils.h"

#include "streams/streams.h"
#include "workers/workers.h"

/* cursors announced at most one by one; more become one look through */
#define MAX_ANNOUNCED 64

static int64 announced[MAX_ANNOUNCED];
static int	nannounced = 0;
static bool look_through = false;

/* Has the workers look at a cursor (0: at every due one) when this transaction commits */
void
CursorsAnnounceAtCommit(int64 cursor_id)
{
	if (cursor_id == 0 || nannounced >= MAX_ANNOUNCED)
		look_through = true;
	else
	{
		for (int i = 0; i < nannounced; i++)
			if (announced[i] == cursor_id)
				return;
		announced[nannounced++] = cursor_id;
	}
}

static void
AnnouncedAtCommit(void)
{
	if (!choreo_preloaded)
		return;
	if (look_through)
		WorkersWake(ACTIVITY_SOURCE, 0);
	else
		for (int i = 0; i < nannounced; i++)
			WorkersWake(ACTIVITY_SOURCE, (uint64) announced[i]);
}

static void
AnnouncedAtEnd(void)
{
	nannounced = 0;
	look_through = false;
}

/* After COMMIT PREPARED (in the session that ran it), whatever was prepared */
static void
AnnouncedAfterCommitPrepared(void)
{
	if (choreo_preloaded)
		WorkersWake(ACTIVITY_SOURCE, 0);
}

static const TransactionParticipant announce_participant = {
	.at_commit = AnnouncedAtCommit,
	.at_end = AnnouncedAtEnd,
	.after_commit_prepared = AnnouncedAfterCommitPrepared,
};

/* Registers the announcements' transaction work; from _PG_init */
void
CursorAnnouncementsInit(void)
{
	TransactionRegisterParticipant(&announce_participant);
}

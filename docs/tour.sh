#!/usr/bin/env bash
# The peerpitch API tour: one script that runs, top to bottom, against a fresh `make run`.
#
#   make run                 # in one terminal: API + embedded worker on :8000, Demo org seeded
#   bash docs/tour.sh        # in another (PEERPITCH_URL=http://host:port for another server)
#
# It needs curl, jq and ffmpeg (`make run` installs them), makes its own 6-second clip, and plays
# every part of the product as the Demo org's people (password `peerpitch-demo` for all):
#
#   rep   Remy Rep    rep@demo.peerpitch.dev    uploads a pitch, asks for reviews
#   top   Tess Top    top@demo.peerpitch.dev    top performer: uploads an exemplar, gives feedback
#   coach Cole Coach  coach@demo.peerpitch.dev  endorses exemplars, reads skill profiles
#   admin Ada Admin   admin@demo.peerpitch.dev  manages users and the stage taxonomy
#
# Every variable is set here; titles carry a timestamp, so running it again against the same
# server works. Any answer that is not 2xx stops the script and prints the error envelope,
# {"error": {"code": ..., "message": ..., "details": ...}}. Lists are
# {"items": [...], "next_cursor": ...} with ?limit= (1..100, default 50) and ?cursor=.
set -euo pipefail
shopt -s inherit_errexit

BASE=${PEERPITCH_URL:-http://127.0.0.1:8000}
PASSWORD=peerpitch-demo
STAGE=contact_to_trial   # the sales stage of this tour's clips ("From contact to trial")
SKILL=discovery_questions
RUN=$(date -u +%Y%m%d-%H%M%S)-$$
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# --- helpers ----------------------------------------------------------------------------------

if [[ -t 1 ]]; then BOLD=$'\033[1m' PLAIN=$'\033[0m'; else BOLD="" PLAIN=""; fi
step() { printf '\n%s== %s%s\n' "$BOLD" "$*" "$PLAIN"; }

# call URL [curl options...]: print the answer's body (or save it to $OUT when set); on an
# answer that is not 2xx, print the body to stderr and fail, which stops the script.
call() {
  local url=$1 out=${OUT:-$WORK/body}
  shift
  if ! curl -sS --fail-with-body -o "$out" "$@" "$url"; then
    echo "FAILED: $url" >&2
    cat "$out" >&2 && echo >&2
    return 1
  fi
  if [[ -z ${OUT-} ]]; then cat "$out"; fi
}

declare -A TOKEN REFRESH
# as WHO METHOD PATH [JSON]: call the API as one of the demo people (see login below).
as() {
  local who=$1 method=$2 path=$3 body=${4-}
  local args=(-X "$method" -H "Authorization: Bearer ${TOKEN[$who]}")
  if [[ -n $body ]]; then args+=(-H 'Content-Type: application/json' --data "$body"); fi
  call "$BASE$path" "${args[@]}"
}

# login WHO [SESSION]: POST /v1/auth/token; keeps the access and refresh tokens under SESSION
# (default: WHO), so `as SESSION …` calls the API with them.
login() {
  local who=$1 session=${2:-$1} pair
  pair=$(call "$BASE/v1/auth/token" -X POST -H 'Content-Type: application/json' \
    --data "$(jq -n --arg email "$who@demo.peerpitch.dev" --arg password "$PASSWORD" \
      '{email: $email, password: $password}')")
  TOKEN[$session]=$(jq -r .access_token <<<"$pair")
  REFRESH[$session]=$(jq -r .refresh_token <<<"$pair")
}

uuid() { cat /proc/sys/kernel/random/uuid; }

# wait_ready WHO CLIP: poll the clip (at most 3 minutes) until it is `ready`; fail if `failed`.
wait_ready() {
  local clip status last=""
  for _ in $(seq 1 360); do
    clip=$(as "$1" GET "/v1/clips/$2")
    status=$(jq -r .status <<<"$clip")
    if [[ $status != "$last" ]]; then
      jq -c '{title, status, progress}' <<<"$clip"
      last=$status
    fi
    case $status in
      ready) return 0 ;;
      failed) jq -c .error <<<"$clip" >&2 && return 1 ;;
    esac
    sleep 0.5
  done
  echo "clip $2 is still $status after 3 minutes" >&2
  return 1
}

# --- 1. Operations: no Authorization on these -------------------------------------------------

step "GET /healthz and /readyz (database and storage reachable, else 503 with the reason)"
call "$BASE/healthz"
echo
call "$BASE/readyz"
echo

# --- 2. Auth, me, stages, users ---------------------------------------------------------------

step "POST /v1/auth/token for the four demo people; GET /v1/me for each"
for who in rep top coach admin; do
  login "$who"
  as "$who" GET /v1/me | jq -c '{id, name, role, email}'
done
REP_ID=$(as rep GET /v1/me | jq -r .id)
TOP_ID=$(as top GET /v1/me | jq -r .id)
COACH_ID=$(as coach GET /v1/me | jq -r .id)

step "GET /v1/stages: the sales stages and their skills (the tour uses $STAGE)"
as rep GET /v1/stages | tee "$WORK/stages.json" |
  jq -r '.[] | "\(.key): \([.skills[].key] | join(", "))"'
SKILLS=$(jq -c --arg stage "$STAGE" '[.[] | select(.key == $stage) | .skills[].key]' \
  "$WORK/stages.json")

step "PATCH /v1/me: your own name (or password, with current_password; it ends your other logins)"
as rep PATCH /v1/me '{"name": "Remy Rep"}' | jq -c '{id, name, role}'

step "GET /v1/people?q=Tess: colleagues by name (no emails), e.g. whom to ask for a review"
as rep GET '/v1/people?q=Tess' | jq -c '.items[] | {id, name, role}'

step "GET /v1/users (admins; also POST /v1/users, PATCH /v1/users/{id}, POST|PATCH /v1/stages)"
as admin GET '/v1/users?limit=10' | jq -r '.items[] | "\(.role)\t\(.email)"'

# --- 3. Upload a pitch: the resumable protocol ------------------------------------------------

step "Make a 6-second test clip with ffmpeg"
FILE=$WORK/pitch.mp4
ffmpeg -nostdin -loglevel error -y \
  -f lavfi -i testsrc2=size=320x240:rate=25:duration=6 \
  -f lavfi -i sine=frequency=440:duration=6 \
  -c:v libx264 -preset ultrafast -pix_fmt yuv420p -c:a aac -shortest "$FILE"
SIZE=$(stat -c %s "$FILE")
SHA=$(sha256sum "$FILE" | cut -d' ' -f1)
echo "$FILE: $SIZE bytes, sha256 $SHA"

step "POST /v1/clips (rep): the clip and its upload (id, part size, part count)"
KEY=$(uuid)   # a retry with the same Idempotency-Key returns the first answer
CLIP_BODY=$(jq -n --arg title "Discovery call $RUN" --arg stage "$STAGE" --arg skill "$SKILL" \
  --argjson size "$SIZE" --arg sha "$SHA" \
  '{title: $title, kind: "pitch", stage: $stage, skills: [$skill], visibility: "org",
    filename: "pitch.mp4", content_type: "video/mp4", size_bytes: $size, sha256: $sha}')
call "$BASE/v1/clips" -X POST -H "Authorization: Bearer ${TOKEN[rep]}" \
  -H 'Content-Type: application/json' -H "Idempotency-Key: $KEY" --data "$CLIP_BODY" \
  >"$WORK/clip.json"
jq -c '{clip: (.clip | {id, title, status}), upload}' "$WORK/clip.json"
PITCH=$(jq -r .clip.id "$WORK/clip.json")
UPLOAD=$(jq -r .upload.id "$WORK/clip.json")
PART_SIZE=$(jq -r .upload.part_size "$WORK/clip.json")
COUNT=$(jq -r .upload.part_count "$WORK/clip.json")

step "The same POST again with the same Idempotency-Key: the same clip, nothing new"
call "$BASE/v1/clips" -X POST -H "Authorization: Bearer ${TOKEN[rep]}" \
  -H 'Content-Type: application/json' -H "Idempotency-Key: $KEY" --data "$CLIP_BODY" |
  jq -c --arg first "$PITCH" '{id: .clip.id, same_clip: (.clip.id == $first)}'

step "POST /v1/uploads/$UPLOAD/parts: signed URLs for parts 1..$COUNT"
as rep POST "/v1/uploads/$UPLOAD/parts" \
  "$(jq -n --argjson n "$COUNT" '{part_numbers: [range(1; $n + 1)]}')" >"$WORK/parts.json"
jq -c '.parts[] | {number, method, url: (.url[:60] + "…")}' "$WORK/parts.json"

step "PUT each part's bytes to its URL, without Authorization; keep each ETag"
split -b "$PART_SIZE" -d -a 5 "$FILE" "$WORK/part."
for n in $(seq 1 "$COUNT"); do
  url=$(jq -r --argjson n "$n" '.parts[] | select(.number == $n) | .url' "$WORK/parts.json")
  method=$(jq -r --argjson n "$n" '.parts[] | select(.number == $n) | .method' \
    "$WORK/parts.json")
  headers=()
  while IFS= read -r header; do headers+=(-H "$header"); done < <(
    jq -r --argjson n "$n" '.parts[] | select(.number == $n) | .headers | to_entries[] |
      "\(.key): \(.value)"' "$WORK/parts.json")
  call "$url" -X "$method" "${headers[@]}" --data-binary "@$WORK/part.$(printf %05d $((n - 1)))" \
    -D "$WORK/part_headers" >/dev/null
  etag=$(grep -i '^etag:' "$WORK/part_headers" | cut -d' ' -f2- | tr -d '\r')
  jq -nc --argjson n "$n" --arg etag "$etag" '{number: $n, etag: $etag}'
done | jq -s '{parts: .}' >"$WORK/complete.json"
jq -c . "$WORK/complete.json"

step "GET /v1/uploads/$UPLOAD: what is stored (a client that crashed resends only the rest)"
as rep GET "/v1/uploads/$UPLOAD" | jq -c '{status, part_count, uploaded_parts}'

step "POST /v1/uploads/$UPLOAD/complete: the clip moves to processing, its transcode is queued"
as rep POST "/v1/uploads/$UPLOAD/complete" "$(cat "$WORK/complete.json")" | jq -c '{id, status}'

# --- 4. An exemplar candidate, uploaded in one request ----------------------------------------

step "POST /v1/clips (top) + PUT /v1/clips/{id}/source: the whole file in one request (→ 202)"
EXEMPLAR=$(as top POST /v1/clips "$(jq -n --arg title "Discovery masterclass $RUN" \
  --arg stage "$STAGE" --argjson size "$SIZE" \
  '{title: $title, kind: "exemplar", stage: $stage,
    skills: ["discovery_questions", "trust_credibility"], filename: "masterclass.mp4",
    content_type: "video/mp4", size_bytes: $size}')" | jq -r .clip.id)
call "$BASE/v1/clips/$EXEMPLAR/source" -X PUT -H "Authorization: Bearer ${TOKEN[top]}" \
  -H 'Content-Type: video/mp4' --data-binary "@$FILE" | jq -c '{id, title, status}'

# --- 5. Processing; editing, deleting and listing clips ---------------------------------------

step "Wait for both clips: processing → viewable (first segment plays) → ready"
wait_ready rep "$PITCH"
wait_ready top "$EXEMPLAR"
as rep GET "/v1/clips/$PITCH" | tee "$WORK/pitch.json" |
  jq -c '{status, duration_ms, width, height, fps, has_audio, renditions}'
DURATION=$(jq -r .duration_ms "$WORK/pitch.json")

step "PATCH /v1/clips/$PITCH (owner or admin): title, description, stage, skills, visibility"
as rep PATCH "/v1/clips/$PITCH" '{"description": "First call with Initech; 6 s demo cut."}' |
  jq -c '{title, description, visibility}'

step "A clip you do not want: DELETE /v1/uploads/{id} aborts its upload, DELETE /v1/clips/{id}"
SPARE=$(as rep POST /v1/clips "$(jq -n --arg title "Spare take $RUN" --arg stage "$STAGE" \
  '{title: $title, kind: "pitch", stage: $stage, filename: "spare.mp4",
    content_type: "video/mp4", size_bytes: 1000}')")
as rep DELETE "/v1/uploads/$(jq -r .upload.id <<<"$SPARE")"
as rep GET "/v1/clips/$(jq -r .clip.id <<<"$SPARE")" | jq -c '{title, status, error}'
as rep DELETE "/v1/clips/$(jq -r .clip.id <<<"$SPARE")"
echo "deleted (its media is purged by a background job)"

step "GET /v1/clips?stage=$STAGE&q=…: clips the caller may see, newest first"
as coach GET "/v1/clips?stage=$STAGE&q=$RUN&limit=10" |
  jq -c '.items[] | {id, title, kind, status, view_count, poster_url: (.poster_url // "")[:48]}'

# --- 6. Playback and views --------------------------------------------------------------------

step "GET /v1/clips/$PITCH/playback: signed, expiring URLs (no Authorization needed on them)"
as coach GET "/v1/clips/$PITCH/playback" | tee "$WORK/playback.json" | jq -c .
HLS=$(jq -r .hls_url "$WORK/playback.json")

step "Fetch the HLS master playlist as a player would"
call "$HLS" | head -n 8

step "GET the poster and the storyboard track"
POSTER=$(jq -r '.poster_url // empty' "$WORK/playback.json")
if [[ -n $POSTER ]]; then
  OUT=/dev/null call "$POSTER" -L -w 'poster: %{content_type}, %{size_download} bytes\n'
fi
STORYBOARD=$(jq -r '.storyboard_url // empty' "$WORK/playback.json")
if [[ -n $STORYBOARD ]]; then call "$STORYBOARD" | head -n 4; fi

step "POST /v1/clips/$PITCH/views (coach watched it to the end); the owner sees who watched"
as coach POST "/v1/clips/$PITCH/views" "$(jq -n --argjson d "$DURATION" \
  '{position_ms: $d, watched_ms: $d, completed: true}')" | jq -c .
as rep GET "/v1/clips/$PITCH/views" | jq -c '.items[] | {name, progress}'
as coach GET '/v1/me/history?limit=3' | jq -c '.items[] | {title: .clip.title, progress}'

# --- 7. Feedback ------------------------------------------------------------------------------

# A third of the way in, spanning to two thirds: within the clip whatever its exact duration.
AT=$((DURATION / 3))
END=$((DURATION * 2 / 3))
step "POST /v1/clips/$PITCH/feedback (top): a note at $AT..$END ms about $SKILL, with an arrow"
NOTE=$(call "$BASE/v1/clips/$PITCH/feedback" -X POST -H "Authorization: Bearer ${TOKEN[top]}" \
  -H 'Content-Type: application/json' -H "Idempotency-Key: $(uuid)" \
  --data "$(jq -n --argjson at "$AT" --argjson until "$END" --arg skill "$SKILL" \
    '{body: "Ask why before you demo.", timestamp_ms: $at, end_ms: $until, skill: $skill,
      annotation: {shapes: [{type: "arrow", points: [[0.2, 0.3], [0.5, 0.5]],
                             color: "#ff3b30"}]}}')" | jq -r .id)
echo "feedback $NOTE"

step "A reply (rep): it joins the thread and takes its position"
as rep POST "/v1/clips/$PITCH/feedback" "$(jq -n --arg parent "$NOTE" \
  '{body: "Trying that on Thursday", parent_id: $parent}')" |
  jq -c '{id, parent_id, timestamp_ms, body}'

step "Another thread (coach), about demo, mentioning the top performer; it stays open"
as coach POST "/v1/clips/$PITCH/feedback" "$(jq -n --argjson at "$END" --arg top "$TOP_ID" \
  '{body: "Show the ROI slide before the demo; Tess does it well.", timestamp_ms: $at,
    skill: "demo", mentions: [$top]}')" | jq -c '{id, timestamp_ms, skill, mentions}'

step "POST /v1/feedback/$NOTE/reactions/helpful (rep: anyone but the author)"
as rep POST "/v1/feedback/$NOTE/reactions/helpful" | jq -c .

step "POST /v1/feedback/$NOTE/resolve (the clip's owner, the author, coaches, admins)"
as rep POST "/v1/feedback/$NOTE/resolve" | jq -c '{id, resolved_at, resolved_by}'

step "GET /v1/feedback/$NOTE: one thread with its replies (where a notification links to)"
as top GET "/v1/feedback/$NOTE" | jq -c '{id, body, resolved_at, reply_count, helpful_count}'

step "GET /v1/clips/$PITCH/feedback: threads in playback order (?resolved= &skill= &author_id=)"
as rep GET "/v1/clips/$PITCH/feedback" | jq -c '.items[] | {timestamp_ms, skill, resolved_at}'
as rep GET "/v1/clips/$PITCH/feedback?resolved=true&skill=$SKILL" |
  jq -c '.items[] | {timestamp_ms, end_ms, author: .author.name, body, helpful_count,
                     replies: [.replies[] | {author: .author.name, body}]}'

# --- 8. Reviews and the skill profile ---------------------------------------------------------

DUE=$(date -u -d '+2 days' +%Y-%m-%dT%H:%M:%SZ)
step "POST /v1/clips/$PITCH/review-requests (rep asks top, due $DUE)"
REQ=$(as rep POST "/v1/clips/$PITCH/review-requests" "$(jq -n --arg reviewer "$TOP_ID" \
  --arg due "$DUE" '{reviewer_id: $reviewer, message: "Before my Initech call", due_at: $due}')" |
  jq -r .id)
echo "review request $REQ"

step "GET /v1/review-requests?box=inbox&status=pending (top's inbox; overdue ones flagged)"
as top GET '/v1/review-requests?box=inbox&status=pending' |
  jq -c '.items[] | {id, clip: .clip.title, requester: .requester.name, due_at, overdue}'

step "POST /v1/review-requests/$REQ/complete: a 1..5 score for each skill of $STAGE"
as top POST "/v1/review-requests/$REQ/complete" "$(jq -n --argjson skills "$SKILLS" \
  '{scores: ($skills | to_entries | map({key: .value, value: (4 - .key % 3)}) | from_entries),
    summary: "Great questions; show the demo later."}')" | jq -c '{status, scores, summary}'

step "Another request (rep asks coach), which the coach declines"
REQ2=$(as rep POST "/v1/clips/$PITCH/review-requests" "$(jq -n --arg reviewer "$COACH_ID" \
  --arg due "$DUE" '{reviewer_id: $reviewer, due_at: $due}')" | jq -r .id)
as coach POST "/v1/review-requests/$REQ2/decline" '{"reason": "On leave this week"}' |
  jq -c '{status, decline_reason}'
as rep GET '/v1/review-requests?box=outbox&limit=2' |
  jq -c '.items[] | {reviewer: .reviewer.name, status}'

step "GET /v1/users/$REP_ID/skills (coach): the rep's skill profile for $STAGE"
as coach GET "/v1/users/$REP_ID/skills" |
  jq -c --arg stage "$STAGE" '.stages[] | select(.key == $stage) | .skills[] |
    {key, scores: (.scores | {count, average, weighted_average}), feedback,
     trend: .trend.direction}'

# --- 9. Exemplars and the library -------------------------------------------------------------

step "POST /v1/clips/$EXEMPLAR/exemplar (top marks their own clip), then the coach endorses it"
as top POST "/v1/clips/$EXEMPLAR/exemplar" '{"note": "Five open questions in the first minute"}' |
  jq -c '{title: .clip.title, note, endorsed, score}'
as coach POST "/v1/clips/$EXEMPLAR/exemplar" '{}' | jq -c '{title: .clip.title, endorsed, score}'

step "GET /v1/exemplars?stage=$STAGE&skill=$SKILL&q=…: the library, best first"
as rep GET "/v1/exemplars?stage=$STAGE&skill=$SKILL&q=$RUN" |
  jq -c '.items[] | {title: .clip.title, owner: .clip.owner.name, note, score, endorsed}'

step "POST /v1/clips/$PITCH/exemplars (a manual link), GET the pitch's exemplars"
as rep POST "/v1/clips/$PITCH/exemplars" "$(jq -n --arg id "$EXEMPLAR" '{exemplar_id: $id}')" |
  jq -c '{source, title: .exemplar.clip.title}'
as rep GET "/v1/clips/$PITCH/exemplars" |
  jq -c '.[] | {source, title: .exemplar.clip.title, reason, score}'

# --- 10. Before a meeting: the prep kit -------------------------------------------------------

step "GET /v1/prep?stage=$STAGE&limit=3: exemplars to download, tips, my open feedback"
call "$BASE/v1/prep?stage=$STAGE&limit=3" -H "Authorization: Bearer ${TOKEN[rep]}" \
  -D "$WORK/prep_headers" >"$WORK/kit.json"
jq -c '{stage, urls_expire_at, exemplars: [.exemplars[].title],
        tips: [.tips[] | {body, deep_link}], my_open_feedback: (.my_open_feedback | length)}' \
  "$WORK/kit.json"
ETAG=$(grep -i '^etag:' "$WORK/prep_headers" | cut -d' ' -f2- | tr -d '\r')

step "The same kit with If-None-Match: 304 while nothing it shows has changed"
OUT=/dev/null call "$BASE/v1/prep?stage=$STAGE&limit=3" -H "Authorization: Bearer ${TOKEN[rep]}" \
  -H "If-None-Match: $ETAG" -w '%{http_code}\n'

step "Offline copies of the kit's exemplars (the MP4 URLs redirect to signed media)"
jq -r '.exemplars[] | select(.mp4_url) | "\(.clip_id) \(.mp4_url)"' "$WORK/kit.json" |
  while read -r id url; do
    OUT=$WORK/$id.mp4 call "$url" -L
    echo "$id.mp4: $(stat -c %s "$WORK/$id.mp4") bytes"
  done

# --- 11. Notifications ------------------------------------------------------------------------

step "GET /v1/notifications/unread-count (a badge) and GET /v1/notifications?unread=true (rep)"
as rep GET /v1/notifications/unread-count | jq -c .
as rep GET '/v1/notifications?unread=true' | tee "$WORK/notes.json" |
  jq -c '.items[] | {kind, actor: .actor.name, data}'

step "POST /v1/notifications/read with those ids (an empty list is fine), then all of top's"
as rep POST /v1/notifications/read "$(jq -c '{ids: [.items[].id]}' "$WORK/notes.json")" | jq -c .
as top POST /v1/notifications/read '{"all": true}' | jq -c .

step "GET /v1/events (admin): every change as an event, in seq order; here the pitch's"
as admin GET "/v1/events?types=clip.*,feedback.*,review_request.*&limit=100" |
  jq -r --arg clip "$PITCH" '.items[]
    | select((.data.id // .data.clip_id) == $clip or .data.clip_id == $clip)
    | "\(.seq)\t\(.type)"'

# --- 12. Refresh-token rotation ---------------------------------------------------------------

step "POST /v1/auth/refresh with the refresh token saved at login: a new pair"
PAIR=$(call "$BASE/v1/auth/refresh" -X POST -H 'Content-Type: application/json' \
  --data "$(jq -n --arg token "${REFRESH[rep]}" '{refresh_token: $token}')")
TOKEN[rep]=$(jq -r .access_token <<<"$PAIR")
REFRESH[rep]=$(jq -r .refresh_token <<<"$PAIR")
jq -c '{token_type, expires_in, refresh_expires_in}' <<<"$PAIR"
# The old refresh token is spent. Presented again within PEERPITCH_REFRESH_REUSE_GRACE_S (30 s:
# a lost answer, two tabs) it answers the same new refresh token; later, the reuse counts as
# theft and ends the whole login.
as rep GET /v1/me | jq -c '{name, role}'

step "POST /v1/auth/logout: a second login of the rep (a phone) ends; its refresh token dies"
login rep phone
as phone POST /v1/auth/logout >/dev/null
echo "logged out (204); refreshing with that login's token now answers $(curl -s -o /dev/null \
  -w '%{http_code}' -X POST "$BASE/v1/auth/refresh" -H 'Content-Type: application/json' \
  --data "$(jq -n --arg token "${REFRESH[phone]}" '{refresh_token: $token}')")"

# --- 13. Operations again ---------------------------------------------------------------------

step "GET /metrics (Prometheus) and X-Request-ID on every answer"
OUT=$WORK/metrics.txt call "$BASE/metrics"
grep -v '^#' "$WORK/metrics.txt" | grep -m 5 'v1/clips' || true
OUT=/dev/null call "$BASE/healthz" -H "X-Request-ID: tour-$RUN" -D "$WORK/ops_headers"
grep -i '^x-request-id' "$WORK/ops_headers"

step "Done: the tour ran as rep, top, coach and admin"

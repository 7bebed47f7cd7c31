// Package alert tells humans about failures beatwatch cannot fix itself.
//
// A Webhook sends alerts to one URL in one of three formats (Slack's
// {"text":…}, PagerDuty Events API v2, or beatwatch's own JSON) from one
// goroutine, with a bounded queue and retries, so that raising an alert
// never blocks the watcher. Every alert about one failure of one agent
// carries the same failure id: repeats inside Config.Repeat are suppressed,
// and the resolve that follows the agent's recovery is sent only for a
// failure whose alert was delivered.
//
// What to alert about, and when, is the recovery package's business; this
// package knows formats, deduplication and delivery.
package alert

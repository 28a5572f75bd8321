//! The message budget: what one message may carry in all, over and above the per-block limits.
//!
//! Slack refuses a message whose text fields add up to more than about 12,000 characters
//! (bolt-js #2509; one was refused at 11,341 in #2867), whatever the per-block limits say. So
//! every message is measured as Slack counts it — the sum of every text field once rendered:
//! headers, section texts, field texts, context texts, button labels and the notification text —
//! and kept within [`MAX_MESSAGE_CHARS`], with [`MAX_BLOCKS`] blocks at most. Measures here are
//! upper bounds of what [`crate::slack::blocks`] sends.

use super::limits::{MAX_BLOCKS, MAX_HEADER_CHARS};
use super::markdown::{code_to_mrkdwn, escape_mrkdwn, to_mrkdwn};
use super::reply::{Block, Reply};

/// Characters summed over all text fields of one message.
pub const MAX_MESSAGE_CHARS: usize = 10_000;

/// What a badge costs at most once rendered (its icon name, the bold marks, the spacing).
const BADGE_OVERHEAD: usize = 24;
/// What a field's label adds to its value (`*label*` and a line break).
const FIELD_OVERHEAD: usize = 3;

/// The characters `block` adds to a message's text fields once rendered for Slack.
pub fn block_chars(block: &Block) -> usize {
    let count = |s: &str| s.chars().count();
    match block {
        Block::Header(t) => count(&escape_mrkdwn(t)).min(MAX_HEADER_CHARS),
        Block::Section(md) | Block::Context(md) => count(&to_mrkdwn(md)),
        Block::Code(code) => count(&code_to_mrkdwn(code)),
        Block::Fields(fields) => fields
            .iter()
            .map(|f| count(&escape_mrkdwn(&f.label)) + FIELD_OVERHEAD + count(&to_mrkdwn(&f.value)))
            .sum(),
        Block::Badges(badges) => badges
            .iter()
            .map(|b| b.label().len() + BADGE_OVERHEAD)
            .sum(),
        Block::Buttons(buttons) => buttons
            .iter()
            .map(|b| count(&escape_mrkdwn(&b.label)))
            .sum(),
    }
}

/// The characters of `blocks` together.
pub fn blocks_chars(blocks: &[Block]) -> usize {
    blocks.iter().map(block_chars).sum()
}

/// The characters of a whole message: its blocks and its notification text.
pub fn reply_chars(reply: &Reply) -> usize {
    blocks_chars(&reply.blocks) + escape_mrkdwn(&reply.text).chars().count()
}

/// Whether `reply` is within the message budget: [`MAX_BLOCKS`] blocks and
/// [`MAX_MESSAGE_CHARS`] characters.
pub fn within_budget(reply: &Reply) -> bool {
    reply.blocks.len() <= MAX_BLOCKS && reply_chars(reply) <= MAX_MESSAGE_CHARS
}

/// Splits `blocks` (each already within its own limits) into pages of at most `max_blocks`
/// blocks and `max_chars` characters each, in order; at least one page, possibly empty.
pub fn paginate_within(blocks: Vec<Block>, max_blocks: usize, max_chars: usize) -> Vec<Vec<Block>> {
    let max_blocks = max_blocks.max(1);
    let mut pages = Vec::new();
    let mut page: Vec<Block> = Vec::new();
    let mut chars = 0usize;
    for block in blocks {
        let size = block_chars(&block);
        if !page.is_empty() && (page.len() == max_blocks || chars + size > max_chars) {
            pages.push(std::mem::take(&mut page));
            chars = 0;
        }
        chars += size;
        page.push(block);
    }
    if !page.is_empty() || pages.is_empty() {
        pages.push(page);
    }
    pages
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_respect_both_limits() {
        let big = "x".repeat(2_900);
        let blocks: Vec<Block> = (0..10).map(|_| Block::Section(big.clone())).collect();
        let pages = paginate_within(blocks, MAX_BLOCKS, MAX_MESSAGE_CHARS);
        assert_eq!(
            pages.iter().map(Vec::len).collect::<Vec<_>>(),
            vec![3, 3, 3, 1]
        );
        let small: Vec<Block> = (0..120).map(|i| Block::Section(i.to_string())).collect();
        let pages = paginate_within(small, MAX_BLOCKS, MAX_MESSAGE_CHARS);
        assert_eq!(
            pages.iter().map(Vec::len).collect::<Vec<_>>(),
            vec![50, 50, 20]
        );
        assert_eq!(
            paginate_within(Vec::new(), 50, 100),
            vec![Vec::<Block>::new()]
        );
    }

    #[test]
    fn measures_rendered_text() {
        assert_eq!(block_chars(&Block::Section("a & b".into())), 9);
        assert_eq!(block_chars(&Block::Code("x".into())), 9);
    }
}

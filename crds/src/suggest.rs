//! "Did you mean ...?" for misspelt kinds and field names.

/// The candidate closest to `word` (case-insensitive edit distance), if close enough to be a
/// plausible typo: at most a third of the word's length, and at least one edit allowed.
pub(crate) fn closest<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let word = word.to_lowercase();
    let limit = (word.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .map(|c| (distance(&word, &c.to_lowercase()), c))
        .filter(|&(d, _)| d <= limit)
        .min_by_key(|&(d, _)| d)
        .map(|(_, c)| c)
}

/// Levenshtein distance over characters.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, &cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_words_only() {
        let kinds = ["LLMProvider", "RoutePolicy", "Budget", "Secret"];
        assert_eq!(closest("LLMProviderr", kinds), Some("LLMProvider"));
        assert_eq!(closest("routepolicy", kinds), Some("RoutePolicy"));
        assert_eq!(closest("Deployment", kinds), None);
        assert_eq!(closest("baseURL", ["baseUrl", "type"]), Some("baseUrl"));
    }
}

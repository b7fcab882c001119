//! BER → DER normalisation for inbound CMS.
//!
//! NSS (Thunderbird), gpgsm and `openssl cms -stream` emit BER: indefinite lengths and
//! OCTET STRINGs split into constructed chunks. The `der` crate reads DER only, so every inbound
//! CMS blob passes through [`normalise`] first. It rewrites lengths to definite minimal form and
//! joins constructed strings; input that is already DER is returned borrowed, untouched.
//!
//! Hostile input is bounded: nesting depth and node count are capped, so neither the stack nor
//! memory can be exhausted, and every length is checked against the bytes actually present.
//!
//! `der` 0.7 insertion-sorts every `SET OF` it decodes, which is quadratic in the element count.
//! So every SET is bounded here, per CMS field (the limits below); DER input goes through the
//! same walk, so the bounds hold for it too. (RecipientInfos, the one large SET, is also read
//! without sorting: see `asn1::RecipientInfoList`.)

use std::borrow::Cow;
use std::cell::Cell;

use super::algorithms::{OID_AUTH_ENVELOPED_DATA, OID_ENVELOPED_DATA, OID_SIGNED_DATA};

/// Deepest nesting accepted. Real CMS nests about 12 levels; 64 leaves plenty of room.
pub const MAX_DEPTH: usize = 64;
/// Most TLV nodes accepted in one blob (a 50 MB `-stream` message has about 60 000).
pub const MAX_NODES: usize = 1_000_000;
/// RecipientInfos in one EnvelopedData or AuthEnvelopedData (a large mailing list).
pub const MAX_RECIPIENT_INFOS: usize = 1_000;
/// SignerInfos (and digestAlgorithms) in one SignedData.
pub const MAX_SIGNER_INFOS: usize = 64;
/// Certificates, and CRLs, carried in one CMS object.
pub const MAX_CERTIFICATES: usize = 200;
/// Any other SET: attributes, attribute values, the attributes of one name component.
pub const MAX_SET_ELEMENTS: usize = 64;

/// Tag of a universal, constructed SET (and SET OF).
const SET_TAG: u8 = 0x31;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BerError {
    #[error("input ends inside an element at offset {0}")]
    Truncated(usize),
    #[error("nesting deeper than {MAX_DEPTH} levels")]
    TooDeep,
    #[error("more than {MAX_NODES} elements")]
    TooManyElements,
    #[error("invalid length at offset {0}")]
    BadLength(usize),
    #[error("invalid tag at offset {0}")]
    BadTag(usize),
    #[error("indefinite length on a primitive element at offset {0}")]
    IndefinitePrimitive(usize),
    #[error("constructed string mixes element types at offset {0}")]
    BadConstructedString(usize),
    #[error("empty input")]
    Empty,
    #[error("more than {limit} {what} in one SET")]
    TooManyInSet { what: &'static str, limit: usize },
}

struct Node<'a> {
    /// Tag bytes in the input (never empty).
    tag: &'a [u8],
    kind: NodeKind<'a>,
    /// Length of this node's content in the DER output, filled in bottom-up (a `Cell`, so that
    /// [`Parser::compute_lengths`] can set it while it reads the children's).
    der_content_len: Cell<usize>,
}

enum NodeKind<'a> {
    Primitive {
        content: &'a [u8],
    },
    /// `children` is a range of [`Parser::child_list`].
    Constructed {
        children: (usize, usize),
    },
    /// A constructed string written back as one primitive string (its leaves concatenated).
    Joined {
        children: (usize, usize),
    },
}

struct Parser<'a> {
    input: &'a [u8],
    nodes: Vec<Node<'a>>,
    /// The children of every constructed node, each node's contiguous: one allocation for
    /// the whole tree instead of one per node (a thousand RecipientInfos are ~20,000 nodes).
    child_list: Vec<usize>,
    /// Children of the nodes being parsed, innermost last; moved to `child_list` when a node
    /// is complete.
    pending: Vec<usize>,
    changed: bool,
}

/// Normalise one BER-encoded object to DER. Borrowed when the input already is DER.
pub fn normalise(input: &[u8]) -> Result<Cow<'_, [u8]>, BerError> {
    if input.is_empty() {
        return Err(BerError::Empty);
    }
    let mut parser = Parser {
        input,
        nodes: Vec::new(),
        child_list: Vec::new(),
        pending: Vec::new(),
        changed: false,
    };
    let (root, end) = parser.parse(0, 0)?;
    // Bytes after the object are ignored, as OpenSSL, NSS and gpgsm do (some writers pad):
    // they are neither decrypted, verified nor shown. (`parse` checked `end`: never an error.)
    let object = input.get(..end).ok_or(BerError::Truncated(input.len()))?;
    parser.check_cms_sets(root)?;
    parser.join_encrypted_content();
    if !parser.changed {
        return Ok(Cow::Borrowed(object));
    }
    parser.compute_lengths();
    // The node `parse` returned: never an error.
    let root = parser
        .nodes
        .get(root)
        .ok_or(BerError::Truncated(input.len()))?;
    let mut out = Vec::with_capacity(input.len());
    parser.write(root, &mut out);
    Ok(Cow::Owned(out))
}

impl<'a> Parser<'a> {
    /// Parse the element at `pos`; returns its node index and the offset just past it.
    fn parse(&mut self, pos: usize, depth: usize) -> Result<(usize, usize), BerError> {
        if depth > MAX_DEPTH {
            return Err(BerError::TooDeep);
        }
        if self.nodes.len() >= MAX_NODES {
            return Err(BerError::TooManyElements);
        }
        let input = self.input;
        let tag_start = pos;
        let first = *input.get(pos).ok_or(BerError::Truncated(pos))?;
        let constructed = first & 0x20 != 0;
        let mut p = pos + 1;
        if first & 0x1f == 0x1f {
            // High tag number: base-128, at most 4 bytes is more than CMS ever uses.
            let mut n = 0;
            loop {
                let b = *input.get(p).ok_or(BerError::Truncated(p))?;
                p += 1;
                n += 1;
                if n > 4 {
                    return Err(BerError::BadTag(tag_start));
                }
                if b & 0x80 == 0 {
                    break;
                }
            }
        }
        // The tag bytes just read, and the length's first byte.
        let Some([tag @ .., len_byte]) = input.get(tag_start..=p) else {
            return Err(BerError::Truncated(p));
        };
        let len_byte = *len_byte;
        p += 1;
        let definite_len = if len_byte == 0x80 {
            None
        } else if len_byte < 0x80 {
            Some(len_byte as usize)
        } else {
            let n = (len_byte & 0x7f) as usize;
            if n > 4 {
                return Err(BerError::BadLength(p - 1));
            }
            let bytes = input.get(p..p + n).ok_or(BerError::Truncated(p))?;
            p += n;
            let len = bytes.iter().fold(0usize, |acc, b| (acc << 8) | *b as usize);
            if len < 0x80 || bytes.first() == Some(&0) {
                self.changed = true; // non-minimal length form
            }
            Some(len)
        };
        let index = self.nodes.len();
        match (constructed, definite_len) {
            (false, None) => Err(BerError::IndefinitePrimitive(tag_start)),
            (false, Some(len)) => {
                let end = p.checked_add(len).ok_or(BerError::BadLength(p))?;
                let content = input.get(p..end).ok_or(BerError::Truncated(input.len()))?;
                self.nodes.push(Node {
                    tag,
                    kind: NodeKind::Primitive { content },
                    der_content_len: Cell::new(len),
                });
                Ok((index, end))
            }
            (true, definite) => {
                self.nodes.push(Node {
                    tag,
                    kind: NodeKind::Constructed { children: (0, 0) },
                    der_content_len: Cell::new(0),
                });
                let limit = match definite {
                    Some(len) => {
                        let end = p.checked_add(len).ok_or(BerError::BadLength(p))?;
                        if end > input.len() {
                            return Err(BerError::Truncated(input.len()));
                        }
                        Some(end)
                    }
                    None => {
                        self.changed = true;
                        None
                    }
                };
                let mark = self.pending.len();
                let is_set = first == SET_TAG;
                loop {
                    match limit {
                        Some(end) if p == end => break,
                        Some(end) if p > end => return Err(BerError::BadLength(tag_start)),
                        None if input.get(p..p + 2) == Some(&[0, 0]) => {
                            p += 2;
                            break;
                        }
                        _ => {}
                    }
                    if is_set && self.pending.len() - mark >= MAX_RECIPIENT_INFOS {
                        // The largest SET any CMS field may hold; stop before reading more.
                        return Err(BerError::TooManyInSet {
                            what: "elements",
                            limit: MAX_RECIPIENT_INFOS,
                        });
                    }
                    let (child, next) = self.parse(p, depth + 1)?;
                    self.pending.push(child);
                    p = next;
                }
                let start = self.child_list.len();
                // This node's children: those pushed since `mark` (nested calls leave
                // `pending` as long as they found it, so the range is always there).
                self.child_list
                    .extend_from_slice(self.pending.get(mark..).unwrap_or_default());
                self.pending.truncate(mark);
                let children = (start, self.child_list.len());
                // Constructed universal strings (OCTET STRING and the character strings) are
                // BER-only: DER wants them primitive.
                let universal_string = first & 0xc0 == 0 && is_string_tag(first & 0x1f);
                let kind = if universal_string {
                    self.check_string_leaves(children, first & 0x1f, tag_start)?;
                    self.changed = true;
                    NodeKind::Joined { children }
                } else {
                    NodeKind::Constructed { children }
                };
                // The node pushed above: never an error.
                let node = self.nodes.get_mut(index).ok_or(BerError::Truncated(p))?;
                node.kind = kind;
                Ok((index, p))
            }
        }
    }

    // Every node index and child range comes from `parse`, so the look-ups below always find
    // what they look for: their fallbacks (`None`, empty) are never taken.

    /// The first tag byte of node `i`.
    fn tag_byte(&self, i: usize) -> Option<u8> {
        self.nodes.get(i)?.tag.first().copied()
    }

    /// The indices of node `i`'s children.
    fn children(&self, i: usize) -> &[usize] {
        match self.nodes.get(i).map(|node| &node.kind) {
            Some(NodeKind::Constructed { children } | NodeKind::Joined { children }) => {
                self.child_indices(*children)
            }
            Some(NodeKind::Primitive { .. }) | None => &[],
        }
    }

    fn child_indices(&self, (start, end): (usize, usize)) -> &[usize] {
        self.child_list.get(start..end).unwrap_or_default()
    }

    fn child_nodes(&self, children: (usize, usize)) -> impl Iterator<Item = &Node<'a>> + '_ {
        self.child_indices(children)
            .iter()
            .filter_map(|&c| self.nodes.get(c))
    }

    fn primitive_content(&self, i: usize) -> Option<&'a [u8]> {
        match self.nodes.get(i)?.kind {
            NodeKind::Primitive { content } => Some(content),
            _ => None,
        }
    }

    /// Bound every SET: the CMS fields that legitimately hold many elements get their own
    /// limit, every other universal SET gets [`MAX_SET_ELEMENTS`].
    fn check_cms_sets(&self, root: usize) -> Result<(), BerError> {
        let mut recipient_infos = None;
        let limit = |node: usize, what: &'static str, limit: usize| {
            if self.children(node).len() > limit {
                return Err(BerError::TooManyInSet { what, limit });
            }
            Ok(())
        };
        // ContentInfo ::= SEQUENCE { contentType OID, content [0] EXPLICIT ANY }
        if let [oid, explicit] = *self.children(root) {
            if let (Some(oid), [content]) = (self.primitive_content(oid), self.children(explicit)) {
                let fields = self.children(*content);
                if oid == OID_ENVELOPED_DATA.as_bytes() || oid == OID_AUTH_ENVELOPED_DATA.as_bytes()
                {
                    for &field in fields {
                        match self.tag_byte(field) {
                            Some(SET_TAG) => {
                                limit(field, "RecipientInfos", MAX_RECIPIENT_INFOS)?;
                                recipient_infos = Some(field);
                            }
                            // originatorInfo: certificates [0], crls [1]
                            Some(0xa0) => {
                                for &set in self.children(field) {
                                    limit(set, "certificates or CRLs", MAX_CERTIFICATES)?;
                                }
                            }
                            Some(0xa1 | 0xa2) => limit(field, "attributes", MAX_SET_ELEMENTS)?,
                            _ => {}
                        }
                    }
                } else if oid == OID_SIGNED_DATA.as_bytes() {
                    for &field in fields {
                        match self.tag_byte(field) {
                            // digestAlgorithms and signerInfos
                            Some(SET_TAG) => {
                                limit(field, "SignerInfos or digest algorithms", MAX_SIGNER_INFOS)?;
                                for &signer in self.children(field) {
                                    for &attrs in self.children(signer) {
                                        if matches!(self.tag_byte(attrs), Some(0xa0 | 0xa1)) {
                                            limit(attrs, "signer attributes", MAX_SET_ELEMENTS)?;
                                        }
                                    }
                                }
                            }
                            Some(0xa0 | 0xa1) => {
                                limit(field, "certificates or CRLs", MAX_CERTIFICATES)?
                            }
                            _ => {}
                        }
                    }
                }
            }
        }
        for (i, node) in self.nodes.iter().enumerate() {
            if node.tag.first() == Some(&SET_TAG) && Some(i) != recipient_infos {
                limit(i, "elements", MAX_SET_ELEMENTS)?;
            }
        }
        Ok(())
    }

    fn check_string_leaves(
        &self,
        children: (usize, usize),
        tag: u8,
        at: usize,
    ) -> Result<(), BerError> {
        for node in self.child_nodes(children) {
            // X.690 §8.7.3.2 (and §8.23.6): every segment is a string of the same universal
            // type, primitive or itself constructed; the class bits count (a `[4]` segment
            // is not an OCTET STRING), as NSS reads it.
            if !matches!(node.tag, [child_tag] if child_tag & !0x20 == tag) {
                return Err(BerError::BadConstructedString(at));
            }
        }
        Ok(())
    }

    /// `EncryptedContentInfo.encryptedContent` is `[0] IMPLICIT OCTET STRING`: streamed BER
    /// writes it constructed, as chunks. No generic rule can tell it from an EXPLICIT `[0]`, so
    /// it is recognised by its unique shape, SEQUENCE { OID, SEQUENCE, [0] of OCTET STRINGs }.
    fn join_encrypted_content(&mut self) {
        for i in 0..self.nodes.len() {
            let Some((target, chunks)) = self.encrypted_content_chunks(i) else {
                continue;
            };
            if let Some(target) = self.nodes.get_mut(target) {
                target.kind = NodeKind::Joined { children: chunks };
                self.changed = true;
            }
        }
    }

    /// When node `i` has the shape of an EncryptedContentInfo whose content is constructed:
    /// the index of that `[0]` and its children (the chunks).
    fn encrypted_content_chunks(&self, i: usize) -> Option<(usize, (usize, usize))> {
        let node = self.nodes.get(i)?;
        if !matches!(node.kind, NodeKind::Constructed { .. }) || node.tag.first() != Some(&0x30) {
            return None;
        }
        let &[oid, algorithm, target] = self.children(i) else {
            return None;
        };
        let tags = [oid, algorithm, target].map(|c| self.tag_byte(c));
        if tags != [Some(0x06), Some(0x30), Some(0xa0)] {
            return None;
        }
        let NodeKind::Constructed { children: chunks } = self.nodes.get(target)?.kind else {
            return None;
        };
        let all_octets = self
            .child_nodes(chunks)
            .all(|c| matches!(c.tag.first(), Some(0x04 | 0x24)));
        all_octets.then_some((target, chunks))
    }

    /// Nodes are stored in pre-order, so walking backwards visits children before parents.
    fn compute_lengths(&self) {
        for node in self.nodes.iter().rev() {
            let len = match &node.kind {
                NodeKind::Primitive { content } => content.len(),
                NodeKind::Constructed { children } => {
                    self.child_nodes(*children).map(Node::encoded_len).sum()
                }
                NodeKind::Joined { children } => self
                    .child_nodes(*children)
                    .map(|c| c.der_content_len.get())
                    .sum(),
            };
            node.der_content_len.set(len);
        }
    }

    fn write(&self, node: &Node<'_>, out: &mut Vec<u8>) {
        let len = node.der_content_len.get();
        match &node.kind {
            NodeKind::Primitive { content } => {
                out.extend_from_slice(node.tag);
                write_length(len, out);
                out.extend_from_slice(content);
            }
            NodeKind::Constructed { children } => {
                out.extend_from_slice(node.tag);
                write_length(len, out);
                for child in self.child_nodes(*children) {
                    self.write(child, out);
                }
            }
            NodeKind::Joined { children } => {
                // The same tag, primitive.
                if let [first, rest @ ..] = node.tag {
                    out.push(first & !0x20);
                    out.extend_from_slice(rest);
                }
                write_length(len, out);
                for child in self.child_nodes(*children) {
                    self.write_leaves(child, out);
                }
            }
        }
    }

    fn write_leaves(&self, node: &Node<'_>, out: &mut Vec<u8>) {
        match &node.kind {
            NodeKind::Primitive { content } => out.extend_from_slice(content),
            NodeKind::Constructed { children } | NodeKind::Joined { children } => {
                for child in self.child_nodes(*children) {
                    self.write_leaves(child, out);
                }
            }
        }
    }
}

impl Node<'_> {
    fn encoded_len(&self) -> usize {
        let len = self.der_content_len.get();
        self.tag.len() + length_of_length(len) + len
    }
}

fn is_string_tag(number: u8) -> bool {
    // OCTET STRING, UTF8String, NumericString, PrintableString, T61String, IA5String,
    // UTCTime, GeneralizedTime, VisibleString, BMPString. (BIT STRING is left alone: joining
    // it needs the unused-bits octets handled, and CMS never chunks one.)
    matches!(number, 4 | 12 | 18 | 19 | 20 | 22 | 23 | 24 | 26 | 30)
}

pub(crate) fn length_of_length(len: usize) -> usize {
    match len {
        0..=0x7f => 1,
        0x80..=0xff => 2,
        0x100..=0xffff => 3,
        0x1_0000..=0xff_ffff => 4,
        _ => 5,
    }
}

pub(crate) fn write_length(len: usize, out: &mut Vec<u8>) {
    let n = length_of_length(len);
    if n == 1 {
        out.push(len as u8);
        return;
    }
    out.push(0x80 | (n - 1) as u8);
    for k in (0..n - 1).rev() {
        out.push((len >> (8 * k)) as u8);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn der_input_is_borrowed() {
        let der = [0x30, 0x03, 0x02, 0x01, 0x05];
        assert!(matches!(normalise(&der).unwrap(), Cow::Borrowed(_)));
    }

    #[test]
    fn indefinite_lengths_become_definite() {
        let ber = [0x30, 0x80, 0x02, 0x01, 0x05, 0x00, 0x00];
        assert_eq!(&*normalise(&ber).unwrap(), &[0x30, 0x03, 0x02, 0x01, 0x05]);
    }

    #[test]
    fn constructed_octet_strings_are_joined() {
        let ber = [
            0x24, 0x80, 0x04, 0x02, b'a', b'b', 0x04, 0x01, b'c', 0x00, 0x00,
        ];
        assert_eq!(&*normalise(&ber).unwrap(), &[0x04, 0x03, b'a', b'b', b'c']);
    }

    /// Difftest class "BER constructed string mixing types": OpenSSL joins segments of any tag,
    /// NSS and X.690 accept only segments of the string's own universal type, and so do we.
    #[test]
    fn constructed_string_segments_must_be_of_the_same_universal_type() {
        for segment_tag in [0x0c, 0x13, 0x02, 0x84, 0x44] {
            let ber = [
                0x24,
                0x80,
                segment_tag,
                0x02,
                b'a',
                b'b',
                0x04,
                0x01,
                b'c',
                0x00,
                0x00,
            ];
            assert_eq!(
                normalise(&ber),
                Err(BerError::BadConstructedString(0)),
                "segment tag {segment_tag:#x}"
            );
        }
        // A constructed segment of the same type is allowed (X.690 §8.7.3.2).
        let nested = [
            0x24, 0x80, 0x24, 0x80, 0x04, 0x01, b'a', 0x00, 0x00, 0x04, 0x01, b'b', 0x00, 0x00,
        ];
        assert_eq!(&*normalise(&nested).unwrap(), &[0x04, 0x02, b'a', b'b']);
    }

    #[test]
    fn encrypted_content_chunks_are_joined_but_explicit_tags_kept() {
        // SEQUENCE { OID, SEQUENCE {}, [0] { OCTET STRING "ab", OCTET STRING "c" } }
        let ber = [
            0x30, 0x80, 0x06, 0x01, 0x2a, 0x30, 0x00, 0xa0, 0x80, 0x04, 0x02, b'a', b'b', 0x04,
            0x01, b'c', 0x00, 0x00, 0x00, 0x00,
        ];
        let der = normalise(&ber).unwrap();
        assert_eq!(
            &*der,
            &[0x30, 0x0a, 0x06, 0x01, 0x2a, 0x30, 0x00, 0x80, 0x03, b'a', b'b', b'c']
        );
        // SEQUENCE { OID, [0] EXPLICIT OCTET STRING } (eContent) stays as it is.
        let explicit = [
            0x30, 0x80, 0x06, 0x01, 0x2a, 0xa0, 0x80, 0x04, 0x01, b'x', 0, 0, 0, 0,
        ];
        assert_eq!(
            &*normalise(&explicit).unwrap(),
            &[0x30, 0x08, 0x06, 0x01, 0x2a, 0xa0, 0x03, 0x04, 0x01, b'x']
        );
    }

    #[test]
    fn long_lengths_are_written_minimally() {
        let mut ber = vec![0x04, 0x82, 0x00, 0x03, 1, 2, 3];
        assert_eq!(&*normalise(&ber).unwrap(), &[0x04, 0x03, 1, 2, 3]);
        ber.truncate(5);
        assert!(normalise(&ber).is_err());
    }

    #[test]
    fn hostile_input_is_bounded() {
        let deep: Vec<u8> = [0x30, 0x80].repeat(10_000);
        assert_eq!(normalise(&deep), Err(BerError::TooDeep));
        assert!(normalise(&[0x04, 0x84, 0xff, 0xff, 0xff, 0xff]).is_err());
        assert!(normalise(&[0x04, 0x80]).is_err());
        assert!(normalise(&[0x30, 0x80, 0x02, 0x01]).is_err());
        assert!(normalise(&[]).is_err());
        // Trailing bytes are dropped, not refused (as the references do).
        assert_eq!(
            normalise(&[0x02, 0x01, 0x05, 0xff]).unwrap().as_ref(),
            &[0x02, 0x01, 0x05]
        );
    }
}

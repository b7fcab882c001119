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

struct Node {
    /// Tag bytes in the input.
    tag: (usize, usize),
    kind: NodeKind,
    /// Length of this node's content in the DER output, filled in bottom-up.
    der_content_len: usize,
}

enum NodeKind {
    Primitive {
        content: (usize, usize),
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
    nodes: Vec<Node>,
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
    // they are neither decrypted, verified nor shown.
    let object = &input[..end];
    parser.check_cms_sets(root)?;
    parser.join_encrypted_content();
    if !parser.changed {
        return Ok(Cow::Borrowed(object));
    }
    parser.compute_lengths();
    let mut out = Vec::with_capacity(input.len());
    parser.write(root, &mut out);
    Ok(Cow::Owned(out))
}

impl Parser<'_> {
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
        let tag = (tag_start, p);
        let len_byte = *input.get(p).ok_or(BerError::Truncated(p))?;
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
                if end > input.len() {
                    return Err(BerError::Truncated(input.len()));
                }
                self.nodes.push(Node {
                    tag,
                    kind: NodeKind::Primitive { content: (p, end) },
                    der_content_len: len,
                });
                Ok((index, end))
            }
            (true, definite) => {
                self.nodes.push(Node {
                    tag,
                    kind: NodeKind::Constructed { children: (0, 0) },
                    der_content_len: 0,
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
                self.child_list.extend_from_slice(&self.pending[mark..]);
                self.pending.truncate(mark);
                let children = (start, self.child_list.len());
                // Constructed universal strings (OCTET STRING and the character strings) are
                // BER-only: DER wants them primitive.
                let universal_string = first & 0xc0 == 0 && is_string_tag(first & 0x1f);
                if universal_string {
                    self.check_string_leaves(children, first & 0x1f, tag_start)?;
                    self.changed = true;
                    self.nodes[index].kind = NodeKind::Joined { children };
                } else {
                    self.nodes[index].kind = NodeKind::Constructed { children };
                }
                Ok((index, p))
            }
        }
    }

    fn tag_byte(&self, i: usize) -> u8 {
        self.input[self.nodes[i].tag.0]
    }

    fn children(&self, i: usize) -> &[usize] {
        match &self.nodes[i].kind {
            NodeKind::Constructed { children } | NodeKind::Joined { children } => {
                &self.child_list[children.0..children.1]
            }
            NodeKind::Primitive { .. } => &[],
        }
    }

    fn primitive_content(&self, i: usize) -> Option<&[u8]> {
        match self.nodes[i].kind {
            NodeKind::Primitive { content } => Some(&self.input[content.0..content.1]),
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
                            SET_TAG => {
                                limit(field, "RecipientInfos", MAX_RECIPIENT_INFOS)?;
                                recipient_infos = Some(field);
                            }
                            // originatorInfo: certificates [0], crls [1]
                            0xa0 => {
                                for &set in self.children(field) {
                                    limit(set, "certificates or CRLs", MAX_CERTIFICATES)?;
                                }
                            }
                            0xa1 | 0xa2 => limit(field, "attributes", MAX_SET_ELEMENTS)?,
                            _ => {}
                        }
                    }
                } else if oid == OID_SIGNED_DATA.as_bytes() {
                    for &field in fields {
                        match self.tag_byte(field) {
                            // digestAlgorithms and signerInfos
                            SET_TAG => {
                                limit(field, "SignerInfos or digest algorithms", MAX_SIGNER_INFOS)?;
                                for &signer in self.children(field) {
                                    for &attrs in self.children(signer) {
                                        if matches!(self.tag_byte(attrs), 0xa0 | 0xa1) {
                                            limit(attrs, "signer attributes", MAX_SET_ELEMENTS)?;
                                        }
                                    }
                                }
                            }
                            0xa0 | 0xa1 => limit(field, "certificates or CRLs", MAX_CERTIFICATES)?,
                            _ => {}
                        }
                    }
                }
            }
        }
        for i in 0..self.nodes.len() {
            if self.tag_byte(i) == SET_TAG && Some(i) != recipient_infos {
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
        for &c in &self.child_list[children.0..children.1] {
            let node = &self.nodes[c];
            // X.690 §8.7.3.2 (and §8.23.6): every segment is a string of the same universal
            // type, primitive or itself constructed; the class bits count (a `[4]` segment
            // is not an OCTET STRING), as NSS reads it.
            let child_tag = self.input[node.tag.0] & !0x20;
            if child_tag != tag || node.tag.1 - node.tag.0 != 1 {
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
            if !matches!(self.nodes[i].kind, NodeKind::Constructed { .. })
                || self.input[self.nodes[i].tag.0] != 0x30
            {
                continue;
            }
            let &[oid, algorithm, target] = self.children(i) else {
                continue;
            };
            let tags = [oid, algorithm, target].map(|c| self.input[self.nodes[c].tag.0]);
            if tags != [0x06, 0x30, 0xa0] {
                continue;
            }
            let NodeKind::Constructed { children: chunks } = self.nodes[target].kind else {
                continue;
            };
            let all_octets = self.child_list[chunks.0..chunks.1].iter().all(|&c| {
                let t = self.input[self.nodes[c].tag.0];
                t == 0x04 || t == 0x24
            });
            if all_octets {
                self.nodes[target].kind = NodeKind::Joined { children: chunks };
                self.changed = true;
            }
        }
    }

    /// Nodes are stored in pre-order, so walking backwards visits children before parents.
    fn compute_lengths(&mut self) {
        for i in (0..self.nodes.len()).rev() {
            let len = match &self.nodes[i].kind {
                NodeKind::Primitive { content } => content.1 - content.0,
                NodeKind::Constructed { children } => self.child_list[children.0..children.1]
                    .iter()
                    .map(|&c| self.encoded_len(c))
                    .sum(),
                NodeKind::Joined { children } => self.child_list[children.0..children.1]
                    .iter()
                    .map(|&c| self.nodes[c].der_content_len)
                    .sum(),
            };
            self.nodes[i].der_content_len = len;
        }
    }

    fn encoded_len(&self, i: usize) -> usize {
        let node = &self.nodes[i];
        (node.tag.1 - node.tag.0) + length_of_length(node.der_content_len) + node.der_content_len
    }

    fn write(&self, i: usize, out: &mut Vec<u8>) {
        let node = &self.nodes[i];
        let tag = &self.input[node.tag.0..node.tag.1];
        match &node.kind {
            NodeKind::Primitive { content } => {
                out.extend_from_slice(tag);
                write_length(node.der_content_len, out);
                out.extend_from_slice(&self.input[content.0..content.1]);
            }
            NodeKind::Constructed { children } => {
                out.extend_from_slice(tag);
                write_length(node.der_content_len, out);
                for &c in &self.child_list[children.0..children.1] {
                    self.write(c, out);
                }
            }
            NodeKind::Joined { children } => {
                out.push(tag[0] & !0x20);
                out.extend_from_slice(&tag[1..]);
                write_length(node.der_content_len, out);
                for &c in &self.child_list[children.0..children.1] {
                    self.write_leaves(c, out);
                }
            }
        }
    }

    fn write_leaves(&self, i: usize, out: &mut Vec<u8>) {
        match &self.nodes[i].kind {
            NodeKind::Primitive { content } => {
                out.extend_from_slice(&self.input[content.0..content.1])
            }
            NodeKind::Constructed { children } | NodeKind::Joined { children } => {
                for &c in &self.child_list[children.0..children.1] {
                    self.write_leaves(c, out);
                }
            }
        }
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

#![allow(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use super::*;

fn fixture(rel: &str) -> Vec<u8> {
    std::fs::read(format!("{}/../fixtures/{rel}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

fn user_key(provider: &'static CryptoProvider) -> PrivateKey {
    provider
        .load_private_key(&fixture("proxy/user.key"))
        .unwrap()
}

#[test]
fn pkcs1_and_pkcs8_forms_of_one_key_agree() {
    let pkcs8 = keys::parse(&fixture("proxy/user.key")).unwrap();
    let info = pkcs8::PrivateKeyInfo::try_from(pkcs8.pkcs8_der.as_slice()).unwrap();
    let pkcs1_pem = der::pem::encode_string(
        "RSA PRIVATE KEY",
        der::pem::LineEnding::LF,
        info.private_key,
    )
    .unwrap();
    let pkcs1 = keys::parse(pkcs1_pem.as_bytes()).unwrap();
    assert_eq!(pkcs1.spki_der, pkcs8.spki_der);
    assert_eq!(pkcs1.bits, 2048);
    // DER input, both forms.
    assert_eq!(
        keys::parse(&pkcs8.pkcs8_der).unwrap().spki_der,
        pkcs8.spki_der
    );
    assert_eq!(
        keys::parse(info.private_key).unwrap().spki_der,
        pkcs8.spki_der
    );
    assert!(matches!(
        keys::parse(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"),
        Err(KeyError::Parse(_))
    ));
    assert!(keys::parse(b"not a key").is_err());
}

#[test]
fn the_public_key_matches_the_certificate() {
    let cert_pem = String::from_utf8(fixture("proxy/user.pem")).unwrap();
    let (_, cert_der) = der::pem::decode_vec(cert_pem.as_bytes()).unwrap();
    for provider in all_providers() {
        let spki = user_key(provider).public_key_spki_der().unwrap();
        // The certificate's SPKI DER appears verbatim inside its DER.
        assert!(
            cert_der.windows(spki.len()).any(|w| w == spki.as_slice()),
            "{}",
            provider.name
        );
    }
}

#[test]
fn signatures_verify_across_backends_and_fail_when_altered() {
    let message = b"signed attributes";
    for signer in all_providers() {
        let key = user_key(signer);
        let spki = key.public_key_spki_der().unwrap();
        for scheme in [
            RsaSignature::Pkcs1v15(DigestAlg::Sha256),
            RsaSignature::Pkcs1v15(DigestAlg::Sha512),
            RsaSignature::Pss {
                digest: DigestAlg::Sha256,
                salt_len: 32,
            },
        ] {
            let signature = key.sign(scheme, message).unwrap();
            for verifier in all_providers() {
                let digest = verifier.digest(scheme.digest(), message);
                let context = format!("{} -> {} {scheme:?}", signer.name, verifier.name);
                verifier
                    .public_keys
                    .verify(&spki, scheme, &digest, &signature)
                    .unwrap_or_else(|e| panic!("{context}: {e}"));
                let other = verifier.digest(scheme.digest(), b"other attributes");
                assert!(
                    verifier
                        .public_keys
                        .verify(&spki, scheme, &other, &signature)
                        .is_err(),
                    "{context}"
                );
                let mut bent = signature.clone();
                bent[10] ^= 1;
                assert!(
                    verifier
                        .public_keys
                        .verify(&spki, scheme, &digest, &bent)
                        .is_err(),
                    "{context}"
                );
            }
        }
    }
}

/// A public key BIT STRING with unused bits is refused, as OpenSSL and NSS refuse it (found
/// by `DIFF_EXHAUSTIVE=detached`: a flip there left a signature "valid" only for the engine).
#[test]
fn a_public_key_bit_string_with_unused_bits_is_refused() {
    let message = b"signed attributes";
    let scheme = RsaSignature::Pkcs1v15(DigestAlg::Sha256);
    for provider in all_providers() {
        let key = user_key(provider);
        let signature = key.sign(scheme, message).unwrap();
        let digest = provider.digest(scheme.digest(), message);
        let mut spki = key.public_key_spki_der().unwrap();
        // SEQUENCE { AlgorithmIdentifier, BIT STRING (03 82 01 0f, then the unused-bits count) }
        let at = spki
            .windows(5)
            .position(|w| w == [0x03, 0x82, 0x01, 0x0f, 0x00])
            .unwrap()
            + 4;
        for unused in [2u8, 4] {
            spki[at] = unused;
            assert!(
                matches!(
                    provider
                        .public_keys
                        .verify(&spki, scheme, &digest, &signature),
                    Err(PublicKeyError::BadKey(_))
                ),
                "{} accepted {unused} unused bits",
                provider.name
            );
        }
    }
}

#[test]
fn openssl_signatures_with_sha224_and_a_short_pss_salt_verify() {
    // Made by `openssl dgst` here, with the fixture key: schemes aws-lc-rs has no constant for.
    let dir = tempdir();
    let data = dir.join("data");
    std::fs::write(&data, b"partner content").unwrap();
    let key_path = format!("{}/../fixtures/proxy/user.key", env!("CARGO_MANIFEST_DIR"));
    let cases: [(&[&str], RsaSignature); 2] = [
        (&["-sha224"], RsaSignature::Pkcs1v15(DigestAlg::Sha224)),
        (
            &[
                "-sha256",
                "-sigopt",
                "rsa_padding_mode:pss",
                "-sigopt",
                "rsa_pss_saltlen:10",
            ],
            RsaSignature::Pss {
                digest: DigestAlg::Sha256,
                salt_len: 10,
            },
        ),
    ];
    for (args, scheme) in cases {
        let sig_path = dir.join("sig");
        let status = std::process::Command::new("openssl")
            .arg("dgst")
            .args(args)
            .args(["-sign", &key_path, "-out"])
            .arg(&sig_path)
            .arg(&data)
            .status()
            .unwrap();
        assert!(status.success());
        let signature = std::fs::read(&sig_path).unwrap();
        for provider in all_providers() {
            let spki = user_key(provider).public_key_spki_der().unwrap();
            let digest = provider.digest(scheme.digest(), b"partner content");
            provider
                .public_keys
                .verify(&spki, scheme, &digest, &signature)
                .unwrap_or_else(|e| panic!("{} {scheme:?}: {e}", provider.name));
        }
    }
    std::fs::remove_dir_all(dir).unwrap();
}

fn tempdir() -> std::path::PathBuf {
    let mut bytes = [0u8; 8];
    default_provider().fill_random(&mut bytes).unwrap();
    let dir = std::env::temp_dir().join(format!("crypto-provider-{}", u64::from_le_bytes(bytes)));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn wrapped_keys_unwrap_genuinely_with_every_transport() {
    let cek = [0x5au8; 32];
    for encrypter in all_providers() {
        for decrypter in all_providers() {
            let key = user_key(decrypter);
            let spki = key.public_key_spki_der().unwrap();
            for transport in [
                KeyTransport::RsaPkcs1v15,
                KeyTransport::RsaOaepSha1,
                KeyTransport::RsaOaepSha256,
            ] {
                let wrapped = encrypter
                    .public_keys
                    .encrypt(&spki, transport, &cek)
                    .unwrap();
                let unwrapped = key.unwrap_key(transport, &wrapped, 32);
                assert!(unwrapped.genuine, "{} {transport:?}", decrypter.name);
                assert_eq!(unwrapped.key.as_slice(), &cek);
                // The right padding but a key of another length: the synthetic key instead.
                let other = key.unwrap_key(transport, &wrapped, 16);
                assert!(!other.genuine);
                assert_eq!(other.key.len(), 16);
            }
        }
    }
}

#[test]
fn implicit_rejection_is_deterministic_and_the_same_on_every_backend() {
    let providers = all_providers();
    let reference = user_key(providers[0]);
    let spki = reference.public_key_spki_der().unwrap();
    // A well-formed RSA ciphertext whose plaintext is not PKCS#1 v1.5 (it is OAEP).
    let bogus = providers[0]
        .public_keys
        .encrypt(&spki, KeyTransport::RsaOaepSha1, &[1u8; 32])
        .unwrap();
    let first = reference.unwrap_key(KeyTransport::RsaPkcs1v15, &bogus, 32);
    assert!(!first.genuine);
    for provider in &providers {
        let key = user_key(provider);
        for _ in 0..3 {
            let again = key.unwrap_key(KeyTransport::RsaPkcs1v15, &bogus, 32);
            assert!(!again.genuine);
            assert_eq!(again.key, first.key, "{}", provider.name);
        }
    }
    // Another ciphertext, another substitute; another key, another substitute.
    let mut bent = bogus.clone();
    bent[100] ^= 1;
    assert_ne!(
        reference
            .unwrap_key(KeyTransport::RsaPkcs1v15, &bent, 32)
            .key,
        first.key
    );
    let old = providers[0]
        .load_private_key(&fixture("proxy/user-old.key"))
        .unwrap();
    assert_ne!(
        old.unwrap_key(KeyTransport::RsaPkcs1v15, &bogus, 32).key,
        first.key
    );
    // Wrong length or not below the modulus: still a substitute, never an error.
    let short = reference.unwrap_key(KeyTransport::RsaPkcs1v15, &bogus[1..], 32);
    assert!(!short.genuine);
    let high = reference.unwrap_key(KeyTransport::RsaPkcs1v15, &[0xff; 256], 24);
    assert!(!high.genuine);
    assert_eq!(high.key.len(), 24);
}

#[test]
fn the_pkcs1v15_decoding_accepts_only_the_exact_shape() {
    let synthetic = [0xeeu8; 16];
    let encode = |ps_len: usize, m: &[u8]| {
        let mut em = vec![0u8, 2];
        em.extend(std::iter::repeat_n(0x11u8, ps_len));
        em.push(0);
        em.extend_from_slice(m);
        em
    };
    let message = [0x42u8; 16];
    let ok = implicit_rejection::select_pkcs1v15(&encode(8, &message), &synthetic);
    assert!(ok.genuine);
    assert_eq!(ok.key.as_slice(), &message);

    let too_short_padding = encode(7, &message);
    let mut wrong_first = encode(20, &message);
    wrong_first[0] = 1;
    let mut wrong_type = encode(20, &message);
    wrong_type[1] = 1;
    // A zero inside the padding: the message would be longer than the key.
    let mut early_zero = encode(20, &message);
    early_zero[5] = 0;
    for bad in [too_short_padding, wrong_first, wrong_type, early_zero] {
        let out = implicit_rejection::select_pkcs1v15(&bad, &synthetic);
        assert!(!out.genuine);
        assert_eq!(out.key.as_slice(), &synthetic);
    }
}

#[test]
fn ciphers_round_trip_across_backends_and_detect_tampering() {
    let plaintext = b"a MIME entity of some length, not a multiple of sixteen";
    for key_len in [16usize, 24, 32] {
        let key = vec![7u8; key_len];
        let iv = [9u8; 16];
        let nonce = [3u8; 12];
        for sealer in all_providers() {
            let cbc = sealer.ciphers.cbc_encrypt(&key, &iv, plaintext).unwrap();
            assert_eq!(cbc.len() % 16, 0);
            let mut gcm = plaintext.to_vec();
            let tag = sealer
                .ciphers
                .gcm_seal(&key, &nonce, b"aad", &mut gcm)
                .unwrap();
            for opener in all_providers() {
                let mut buffer = cbc.clone();
                let len = opener.ciphers.cbc_decrypt(&key, &iv, &mut buffer).unwrap();
                assert_eq!(&buffer[..len], plaintext);
                let mut buffer = gcm.clone();
                opener
                    .ciphers
                    .gcm_open(&key, &nonce, b"aad", &mut buffer, &tag)
                    .unwrap();
                assert_eq!(buffer, plaintext);
                let mut buffer = gcm.clone();
                buffer[0] ^= 1;
                assert!(opener
                    .ciphers
                    .gcm_open(&key, &nonce, b"aad", &mut buffer, &tag)
                    .is_err());
                let mut wrong_key = key.clone();
                wrong_key[0] ^= 1;
                let mut buffer = gcm.clone();
                assert!(opener
                    .ciphers
                    .gcm_open(&wrong_key, &nonce, b"aad", &mut buffer, &tag)
                    .is_err());
            }
        }
    }
    let provider = default_provider();
    assert!(matches!(
        provider.ciphers.cbc_encrypt(&[0u8; 15], &[0u8; 16], b"x"),
        Err(CipherError::BadParameters)
    ));
}

#[test]
fn digests_and_hmac_match_known_answers() {
    for provider in all_providers() {
        assert_eq!(
            hex(&provider.digest(DigestAlg::Sha256, b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            hex(&provider.digest(DigestAlg::Sha1, b"abc")),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        let mut hasher = provider.digests.hasher(DigestAlg::Sha224);
        hasher.update(b"a");
        hasher.update(b"bc");
        assert_eq!(
            hex(&hasher.finish()),
            "23097d223405d8228642a477bda255b32aadbce4bda0b3f7e36c9da7"
        );
        // RFC 4231 test case 2.
        assert_eq!(
            hex(&provider
                .digests
                .hmac_sha256(b"Jefe", &[b"what do ya want ", b"for nothing?"])),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn generated_keys_load_and_sign() {
    for provider in all_providers() {
        let pkcs8 = provider.generate_rsa_pkcs8(2048).unwrap();
        let key = provider.load_private_key(&pkcs8).unwrap();
        assert_eq!(key.bits(), 2048);
        let scheme = RsaSignature::Pkcs1v15(DigestAlg::Sha256);
        let signature = key.sign(scheme, b"tbs").unwrap();
        let digest = provider.digest(DigestAlg::Sha256, b"tbs");
        provider
            .public_keys
            .verify(
                &key.public_key_spki_der().unwrap(),
                scheme,
                &digest,
                &signature,
            )
            .unwrap();
        assert!(matches!(
            provider.generate_rsa_pkcs8(1024),
            Err(KeyError::UnsupportedKeySize(1024))
        ));
    }
}

/// The SubjectPublicKeyInfo DER of a fixture certificate (PEM).
fn cert_spki(rel: &str) -> Vec<u8> {
    let pem = String::from_utf8(fixture(rel)).unwrap();
    let (_, der) = der::pem::decode_vec(pem.as_bytes()).unwrap();
    // openssl extracts it: this crate has no certificate parser.
    let dir = tempdir();
    std::fs::write(dir.join("c.der"), &der).unwrap();
    let out = std::process::Command::new("openssl")
        .args(["x509", "-inform", "DER", "-noout", "-pubkey", "-in"])
        .arg(dir.join("c.der"))
        .output()
        .unwrap();
    std::fs::remove_dir_all(dir).unwrap();
    let (_, spki) = der::pem::decode_vec(&out.stdout).unwrap();
    spki
}

/// `openssl pkeyutl` with `args` over `input`, the fixture key `key`.
fn openssl_pkeyutl(key: &str, args: &[&str], input: &[u8]) -> Vec<u8> {
    let dir = tempdir();
    std::fs::write(dir.join("in"), input).unwrap();
    let key_path = format!("{}/../fixtures/{key}", env!("CARGO_MANIFEST_DIR"));
    let out = std::process::Command::new("openssl")
        .args(["pkeyutl", "-inkey", &key_path])
        .args(args)
        .arg("-in")
        .arg(dir.join("in"))
        .output()
        .unwrap();
    std::fs::remove_dir_all(dir).unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[test]
fn public_key_algorithms_and_the_key_size_policy() {
    assert_eq!(
        keys::public_key_alg(&cert_spki("partner/alice.pem")).unwrap(),
        PublicKeyAlg::Rsa { bits: 2048 }
    );
    for (rel, curve) in [
        ("partner/erin-p256.pem", EcCurve::P256),
        ("partner/peggy-p384.pem", EcCurve::P384),
        ("partner/victor-p521.pem", EcCurve::P521),
    ] {
        assert_eq!(
            keys::public_key_alg(&cert_spki(rel)).unwrap(),
            PublicKeyAlg::Ec { curve }
        );
    }
    assert_eq!(
        keys::public_key_alg(&cert_spki("partner/walter-ed25519.pem")).unwrap(),
        PublicKeyAlg::Ed25519
    );
    // A curve below P-256 (secp224r1) is refused by name.
    let mut p224 = cert_spki("partner/erin-p256.pem");
    let p256_oid = [0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
    let at = p224.windows(10).position(|w| w == p256_oid).unwrap();
    // Same length, different curve: 1.2.840.10045.3.1.1 (P-192) stands in for any other.
    p224[at + 9] = 0x01;
    assert!(matches!(
        keys::public_key_alg(&p224),
        Err(PublicKeyError::Unsupported(_))
    ));
}

#[test]
fn openssl_ecdsa_and_ed25519_signatures_verify_and_fail_when_altered() {
    let message = b"signed attributes";
    for (key, cert, digest) in [
        (
            "partner/erin-p256.key",
            "partner/erin-p256.pem",
            DigestAlg::Sha256,
        ),
        (
            "partner/peggy-p384.key",
            "partner/peggy-p384.pem",
            DigestAlg::Sha384,
        ),
        (
            "partner/victor-p521.key",
            "partner/victor-p521.pem",
            DigestAlg::Sha512,
        ),
    ] {
        let hashed = default_provider().digest(digest, message);
        let signature = openssl_pkeyutl(key, &["-sign"], &hashed);
        let spki = cert_spki(cert);
        for provider in all_providers() {
            provider
                .public_keys
                .verify_ecdsa(&spki, digest, &hashed, &signature)
                .unwrap_or_else(|e| panic!("{} {cert}: {e}", provider.name));
            let mut other = hashed.clone();
            other[0] ^= 1;
            assert!(matches!(
                provider
                    .public_keys
                    .verify_ecdsa(&spki, digest, &other, &signature),
                Err(PublicKeyError::BadSignature)
            ));
        }
    }
    let signature = openssl_pkeyutl("partner/walter-ed25519.key", &["-sign", "-rawin"], message);
    let spki = cert_spki("partner/walter-ed25519.pem");
    for provider in all_providers() {
        provider
            .public_keys
            .verify_ed25519(&spki, message, &signature)
            .unwrap_or_else(|e| panic!("{}: {e}", provider.name));
        assert!(matches!(
            provider
                .public_keys
                .verify_ed25519(&spki, b"signed attributeS", &signature),
            Err(PublicKeyError::BadSignature)
        ));
        // An Ed25519 signature is not an ECDSA one, and the key types do not mix.
        assert!(provider
            .public_keys
            .verify_ecdsa(&spki, DigestAlg::Sha256, &[0; 32], &signature)
            .is_err());
    }
}

/// X25519 (RFC 7748) on every backend against `openssl pkeyutl -derive`, with a key openssl
/// makes; a small-order peer key (all-zero shared secret) is refused.
#[test]
fn x25519_agreement_matches_openssl_derive() {
    let dir = tempdir();
    let run = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .current_dir(&dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    };
    run(&["genpkey", "-algorithm", "X25519", "-out", "x.key"]);
    run(&[
        "pkey", "-in", "x.key", "-pubout", "-outform", "DER", "-out", "x.spki",
    ]);
    let spki = std::fs::read(dir.join("x.spki")).unwrap();
    for provider in all_providers() {
        let agreed = provider.public_keys.agree_ephemeral(&spki).unwrap();
        // The ephemeral key as an SPKI: the recipient's header, the new 32 bytes.
        let mut ephemeral = spki.clone();
        let at = ephemeral.len() - 32;
        ephemeral[at..].copy_from_slice(&agreed.public_key);
        std::fs::write(dir.join("peer.spki"), &ephemeral).unwrap();
        let z = run(&[
            "pkeyutl",
            "-derive",
            "-inkey",
            "x.key",
            "-peerform",
            "DER",
            "-peerkey",
            "peer.spki",
        ]);
        assert_eq!(z, agreed.shared_secret.as_slice(), "{}", provider.name);
        let mut small_order = spki.clone();
        let at = small_order.len() - 32;
        small_order[at..].fill(0);
        assert!(
            provider.public_keys.agree_ephemeral(&small_order).is_err(),
            "{}",
            provider.name
        );
    }
    std::fs::remove_dir_all(dir).unwrap();
}

/// EC private keys on every backend: what one backend signs or agrees, the other checks
/// (two independent implementations; the engine's tests check the same against OpenSSL).
#[test]
fn ec_private_keys_sign_and_agree_on_every_backend() {
    let message = b"signed attributes";
    for (key, cert, curve) in [
        (
            "partner/erin-p256.key",
            "partner/erin-p256.pem",
            EcCurve::P256,
        ),
        (
            "partner/peggy-p384.key",
            "partner/peggy-p384.pem",
            EcCurve::P384,
        ),
        (
            "partner/victor-p521.key",
            "partner/victor-p521.pem",
            EcCurve::P521,
        ),
    ] {
        let spki = cert_spki(cert);
        for signer in all_providers() {
            let private = signer.load_private_key(&fixture(key)).unwrap();
            assert_eq!(private.algorithm(), PublicKeyAlg::Ec { curve });
            let signature = private
                .sign_with(SignatureAlg::Ecdsa(curve.digest()), message)
                .unwrap();
            let hashed = signer.digest(curve.digest(), message);
            for verifier in all_providers() {
                verifier
                    .public_keys
                    .verify_ecdsa(&spki, curve.digest(), &hashed, &signature)
                    .unwrap_or_else(|e| panic!("{} -> {} {cert}: {e}", signer.name, verifier.name));
                // The sender's side of ECDH on one backend, ours on the other.
                let sent = verifier.public_keys.agree_ephemeral(&spki).unwrap();
                assert_eq!(
                    private.agree(&sent.public_key).unwrap().as_slice(),
                    sent.shared_secret.as_slice(),
                    "{} / {} {cert}",
                    signer.name,
                    verifier.name
                );
            }
            // A point that is not on the curve is no agreement.
            let mut bad = <spki::SubjectPublicKeyInfoRef as der::Decode>::from_der(&spki)
                .unwrap()
                .subject_public_key
                .raw_bytes()
                .to_vec();
            let last = bad.len() - 1;
            bad[last] ^= 1;
            assert!(private.agree(&bad).is_err(), "{} {cert}", signer.name);
        }
    }
    // Keys generated by one backend load and sign on the other.
    for maker in all_providers() {
        let pkcs8 = maker.generate_ec_pkcs8(EcCurve::P256).unwrap();
        for user in all_providers() {
            let key = user.load_private_key(&pkcs8).unwrap();
            let signature = key
                .sign_with(SignatureAlg::Ecdsa(DigestAlg::Sha256), b"tbs")
                .unwrap();
            let spki = key.public_key_spki_der().unwrap();
            let digest = user.digest(DigestAlg::Sha256, b"tbs");
            for verifier in all_providers() {
                verifier
                    .public_keys
                    .verify_ecdsa(&spki, DigestAlg::Sha256, &digest, &signature)
                    .unwrap_or_else(|e| {
                        panic!("{} / {} / {}: {e}", maker.name, user.name, verifier.name)
                    });
            }
        }
    }
}

#[test]
fn ephemeral_agreement_matches_openssl_derive() {
    use der::{Decode as _, Encode as _};
    for provider in all_providers() {
        for (key, cert) in [
            ("partner/erin-p256.key", "partner/erin-p256.pem"),
            ("partner/peggy-p384.key", "partner/peggy-p384.pem"),
            ("partner/victor-p521.key", "partner/victor-p521.pem"),
        ] {
            let spki = cert_spki(cert);
            let agreed = provider.public_keys.agree_ephemeral(&spki).unwrap();
            // The ephemeral key as an SPKI: the recipient's with the point replaced.
            let info = spki::SubjectPublicKeyInfoRef::from_der(&spki).unwrap();
            let ephemeral = spki::SubjectPublicKeyInfoRef {
                algorithm: info.algorithm,
                subject_public_key: der::asn1::BitStringRef::from_bytes(&agreed.public_key)
                    .unwrap(),
            }
            .to_der()
            .unwrap();
            let dir = tempdir();
            std::fs::write(dir.join("peer.der"), &ephemeral).unwrap();
            let peer = dir.join("peer.der");
            let z = openssl_pkeyutl(
                key,
                &[
                    "-derive",
                    "-peerform",
                    "DER",
                    "-peerkey",
                    peer.to_str().unwrap(),
                ],
                b"",
            );
            std::fs::remove_dir_all(dir).unwrap();
            assert_eq!(
                z,
                agreed.shared_secret.as_slice(),
                "{} {cert}",
                provider.name
            );
        }
        // An invalid point (not on the curve) is refused, not agreed with.
        let mut bad = cert_spki("partner/erin-p256.pem");
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(provider.public_keys.agree_ephemeral(&bad).is_err());
    }
}

#[test]
fn aes_key_wrap_known_answers_and_integrity_on_every_backend() {
    let unhex = |s: &str| hex_decode(s);
    // RFC 3394 §4.1 and §4.6.
    let cases = [
        (
            "000102030405060708090A0B0C0D0E0F",
            "00112233445566778899AABBCCDDEEFF",
            "1FA68B0A8112B447AEF34BD8FB5A7B829D3E862371D2CFE5",
        ),
        (
            "000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F",
            "00112233445566778899AABBCCDDEEFF000102030405060708090A0B0C0D0E0F",
            "28C9F404C4B810F4CBCCB35CFB87F8263F5786E2D80ED326CBC7F0E71A99F43BFB988B9B7A02DD21",
        ),
    ];
    for provider in all_providers() {
        for (kek, key, wrapped) in cases {
            let (kek, key, wrapped) = (unhex(kek), unhex(key), unhex(wrapped));
            assert_eq!(
                provider.ciphers.aes_key_wrap(&kek, &key).unwrap(),
                wrapped,
                "{}",
                provider.name
            );
            assert_eq!(
                provider
                    .ciphers
                    .aes_key_unwrap(&kek, &wrapped)
                    .unwrap()
                    .as_slice(),
                key
            );
            let mut altered = wrapped.clone();
            altered[5] ^= 1;
            assert!(matches!(
                provider.ciphers.aes_key_unwrap(&kek, &altered),
                Err(CipherError::DecryptionFailed)
            ));
            assert!(provider
                .ciphers
                .aes_key_unwrap(&kek, &wrapped[..16])
                .is_err());
        }
    }
}

#[test]
fn kdfs_match_known_answers() {
    let provider = default_provider();
    // RFC 5869 test case 1.
    let okm = kdf::hkdf_sha256(
        provider.digests,
        &hex_decode("000102030405060708090a0b0c"),
        &[0x0b; 22],
        &hex_decode("f0f1f2f3f4f5f6f7f8f9"),
        42,
    )
    .unwrap();
    assert_eq!(
        hex(&okm),
        "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"
    );
    // X9.63 against `openssl kdf X963KDF`.
    let out = std::process::Command::new("openssl")
        .args([
            "kdf",
            "-keylen",
            "40",
            "-kdfopt",
            "digest:SHA256",
            "-kdfopt",
            "hexsecret:00112233445566778899",
            "-kdfopt",
            "hexinfo:a0a1a2",
            "X963KDF",
        ])
        .output()
        .unwrap();
    let expected = String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .replace(':', "")
        .to_lowercase();
    for provider in all_providers() {
        let ours = kdf::x963(
            provider.digests,
            DigestAlg::Sha256,
            &hex_decode("00112233445566778899"),
            &hex_decode("a0a1a2"),
            40,
        )
        .unwrap();
        assert_eq!(hex(&ours), expected, "{}", provider.name);
    }
    assert!(kdf::x963(provider.digests, DigestAlg::Sha256, b"z", b"", 65).is_none());
}

fn hex_decode(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// X25519 private keys (RFC 8410 PKCS#8, made by `openssl genpkey`) on every backend: the
/// public key is openssl's, the agreement with a sender's ephemeral key (made by either
/// backend) is the sender's and `openssl pkeyutl -derive`'s, and a small-order or
/// wrong-length peer key is refused. The key agrees only: no signature, no RSA transport.
#[test]
fn x25519_private_keys_load_and_agree_on_every_backend() {
    let dir = tempdir();
    let run = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .current_dir(&dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    };
    run(&["genpkey", "-algorithm", "X25519", "-out", "x.key"]);
    run(&[
        "pkey", "-in", "x.key", "-pubout", "-outform", "DER", "-out", "x.spki",
    ]);
    run(&["pkey", "-in", "x.key", "-outform", "DER", "-out", "x.der"]);
    let pem = std::fs::read(dir.join("x.key")).unwrap();
    let pkcs8_der = std::fs::read(dir.join("x.der")).unwrap();
    let spki = std::fs::read(dir.join("x.spki")).unwrap();
    for user in all_providers() {
        for form in [&pem, &pkcs8_der] {
            let key = user.load_private_key(form).unwrap();
            assert_eq!(key.algorithm(), PublicKeyAlg::X25519);
            assert_eq!(key.bits(), 256);
            assert_eq!(key.public_key_spki_der().unwrap(), spki, "{}", user.name);
        }
        let key = user.load_private_key(&pem).unwrap();
        for sender in all_providers() {
            let sent = sender.public_keys.agree_ephemeral(&spki).unwrap();
            let z = key.agree(&sent.public_key).unwrap();
            assert_eq!(
                z.as_slice(),
                sent.shared_secret.as_slice(),
                "{} -> {}",
                sender.name,
                user.name
            );
            // openssl's reading of the same pair.
            let mut peer = spki.clone();
            let at = peer.len() - 32;
            peer[at..].copy_from_slice(&sent.public_key);
            std::fs::write(dir.join("peer.spki"), &peer).unwrap();
            let derived = run(&[
                "pkeyutl",
                "-derive",
                "-inkey",
                "x.key",
                "-peerform",
                "DER",
                "-peerkey",
                "peer.spki",
            ]);
            assert_eq!(derived, z.as_slice());
        }
        // Small order (0 and 1 both give an all-zero shared secret), wrong lengths.
        let mut one = [0u8; 32];
        one[0] = 1;
        for bad in [
            &[0u8; 32][..],
            &one[..],
            &[9u8; 31][..],
            &[9u8; 33][..],
            &[],
        ] {
            assert!(
                matches!(key.agree(bad), Err(KeyError::OperationFailed)),
                "{} {bad:?}",
                user.name
            );
        }
        assert!(matches!(
            key.sign_with(SignatureAlg::Ed25519, b"m"),
            Err(KeyError::UnsupportedKeyType)
        ));
        assert!(matches!(
            key.sign_digest(RsaSignature::Pkcs1v15(DigestAlg::Sha256), &[0; 32]),
            Err(KeyError::UnsupportedKeyType)
        ));
        assert!(
            !key.unwrap_key(KeyTransport::RsaPkcs1v15, &[1; 256], 32)
                .genuine
        );
    }
    // An Ed25519 key is no X25519 key.
    run(&["genpkey", "-algorithm", "Ed25519", "-out", "ed.key"]);
    let ed = std::fs::read(dir.join("ed.key")).unwrap();
    assert!(matches!(
        default_provider().load_private_key(&ed),
        Err(KeyError::UnsupportedKeyType)
    ));
    std::fs::remove_dir_all(dir).unwrap();
}

/// HKDF-SHA256 (RFC 8418's KDF) on every backend's HMAC: RFC 5869's test cases 1 (with a
/// salt) and 3 (no salt, no info), and `openssl kdf HKDF` with no salt and a DER info, as
/// RFC 8418 uses it.
#[test]
fn hkdf_matches_rfc5869_and_openssl_on_every_backend() {
    // RFC 8418's ECC-CMS-SharedInfo for AES-256 key wrap.
    let info = hex_decode("3015300b060960864801650304012da206040400000100");
    let out = std::process::Command::new("openssl")
        .args([
            "kdf",
            "-keylen",
            "32",
            "-kdfopt",
            "digest:SHA256",
            "-kdfopt",
            "hexkey:00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
            "-kdfopt",
        ])
        .arg(format!("hexinfo:{}", hex(&info)))
        .arg("HKDF")
        .output()
        .unwrap();
    assert!(out.status.success());
    let expected = String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .replace(':', "")
        .to_lowercase();
    for provider in all_providers() {
        let tc1 = kdf::hkdf_sha256(
            provider.digests,
            &hex_decode("000102030405060708090a0b0c"),
            &[0x0b; 22],
            &hex_decode("f0f1f2f3f4f5f6f7f8f9"),
            42,
        )
        .unwrap();
        assert_eq!(
            hex(&tc1),
            "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"
        );
        let tc3 = kdf::hkdf_sha256(provider.digests, b"", &[0x0b; 22], b"", 42).unwrap();
        assert_eq!(
            hex(&tc3),
            "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8"
        );
        let ours = kdf::hkdf_sha256(
            provider.digests,
            b"",
            &hex_decode("00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"),
            &info,
            32,
        )
        .unwrap();
        assert_eq!(hex(&ours), expected, "{}", provider.name);
        assert!(kdf::hkdf_sha256(provider.digests, b"", b"z", b"", 65).is_none());
    }
}

"""Page text in Chinese (the default) and English.

Keys are stable; a missing translation falls back to Chinese, and a missing key shows the key
itself, so a gap is visible on the page rather than crashing it."""

from __future__ import annotations

from collections.abc import Callable

LANGUAGES = ("zh-CN", "en")
DEFAULT = "zh-CN"

MESSAGES: dict[str, tuple[str, str]] = {
    "app.title": ("医护签名", "medsign for clinicians"),
    "nav.pending": ("待签", "To sign"),
    "nav.history": ("记录", "History"),
    "nav.settings": ("设置", "Settings"),
    "common.cancel": ("取消", "Cancel"),
    "common.back": ("返回", "Back"),
    "common.error": ("出错了", "Something went wrong"),
    "common.retry": ("重试", "Try again"),
    "common.expires": ("有效期至", "Valid until"),
    "common.loading": ("正在加载…", "Loading…"),
    "common.done": ("完成", "Done"),
    "home.empty": ("没有待签的内容", "Nothing waiting for your signature"),
    "home.select_all": ("全选", "Select all"),
    "home.sign_selected": ("签署所选（{n}）", "Sign selected ({n})"),
    "home.live": ("新的待签内容会自动出现", "New requests appear here by themselves"),
    "home.signed": ("已签署 {n} 项", "{n} signed"),
    "detail.title": ("签署内容", "What you sign"),
    "detail.application": ("来源系统", "Requested by"),
    "detail.scene": ("类型", "Kind"),
    "detail.summary": ("摘要", "Summary"),
    "detail.record_id": ("业务编号", "Record number"),
    "detail.record": ("数据内容", "Record"),
    "detail.digest": ("摘要值", "Digest"),
    "detail.sign": ("签署", "Sign"),
    "detail.reject": ("拒签", "Reject"),
    "detail.reject_reason": ("拒签原因", "Reason for rejecting"),
    "detail.rejected": ("已拒签", "Rejected"),
    "detail.void": ("作废声明：签署后原签名作废", "Void statement: signing it voids the original"),
    "doc.pdf": ("PDF 文件", "PDF document"),
    "doc.list_tag": ("PDF · {n}页", "PDF · {n} p."),
    "doc.pages": ("页数", "Pages"),
    "doc.pages_n": ("共 {n} 页", "{n} pages"),
    "doc.where": ("签名位置", "Signed on"),
    "doc.where_page": ("第 {page} 页", "page {page}"),
    "doc.field": ("签名域", "Field"),
    "doc.level": ("签名级别", "Level"),
    "doc.level.B-T": ("PAdES B-T（含可信时间戳）", "PAdES B-T (trusted timestamp)"),
    "doc.level.B-LT": (
        "PAdES B-LT（含时间戳与长期验证数据）",
        "PAdES B-LT (timestamp and long-term validation data)",
    ),
    "doc.level.B-LTA": (
        "PAdES B-LTA（长期存档，含文档时间戳）",
        "PAdES B-LTA (long-term archive, document timestamp)",
    ),
    "doc.certify": ("认证签名", "Certifies"),
    "doc.certify.1": ("签署后文件不允许任何修改", "no change allowed after it"),
    "doc.certify.2": ("签署后仅允许填表和签名", "only form filling and signing after it"),
    "doc.certify.3": (
        "签署后仅允许填表、签名和批注",
        "only form filling, signing and comments after it",
    ),
    "doc.reason": ("签署原因", "Reason"),
    "doc.location": ("签署地点", "Location"),
    "doc.open": ("查看 PDF 全文", "Open the PDF"),
    "doc.open_signed": ("查看已签署的 PDF", "Open the signed PDF"),
    "doc.open_hint": ("签署前请打开并阅读全文。", "Open and read it before you sign."),
    "doc.appearance": ("签名外观", "How your signature looks"),
    "doc.invisible": (
        "不可见签名：页面上不显示签名图样",
        "Invisible signature: nothing is drawn on the page",
    ),
    "doc.no_handwriting": (
        "您尚未设置手写签名，签名处将只显示姓名和时间。",
        "You have no handwritten signature yet: it will show your name and the time only.",
    ),
    "doc.set_handwriting": ("设置手写签名", "Set up my handwritten signature"),
    "doc.signing_time": ("签署时间", "time of signing"),
    "doc.pdf_sha256": ("文件摘要 SHA-256", "File SHA-256"),
    "hw.title": ("手写签名", "Handwritten signature"),
    "hw.hint": (
        "在白纸上用黑色或深蓝色笔签名，平放在光线均匀处拍照，系统会自动去除背景。",
        "Sign on white paper with a black or dark-blue pen, lay it flat in even light and"
        " photograph it: the background is removed for you.",
    ),
    "hw.used_for": ("签署 PDF 文件时，签名处显示此手写签名。", "Your PDF signatures show it."),
    "hw.current": ("当前使用", "In use"),
    "hw.none": ("尚未设置手写签名", "No handwritten signature yet"),
    "hw.take": ("拍照上传签名", "Photograph my signature"),
    "hw.replace": ("拍照更换", "Replace with a new photo"),
    "hw.processing": ("正在去除背景…", "Removing the background…"),
    "hw.check": (
        "请核对：签名是否完整清晰，背景是否已去除干净？",
        "Check it: is the whole signature there and sharp, and the background gone?",
    ),
    "hw.on_paper": ("纸面效果", "On paper"),
    "hw.transparent": ("透明背景", "Transparent"),
    "hw.confirm": ("使用此签名", "Use this signature"),
    "hw.retake": ("重拍", "Retake"),
    "hw.saved": ("手写签名已启用", "Your handwritten signature is in use"),
    "hw.alt": ("手写签名", "handwritten signature"),
    "state.pending": ("待签", "Waiting"),
    "state.signed": ("已签署", "Signed"),
    "state.rejected": ("已拒签", "Rejected"),
    "state.cancelled": ("已撤销", "Cancelled"),
    "state.expired": ("已过期", "Expired"),
    "state.voided": ("已作废", "Voided"),
    "pin.title": ("输入签名密码", "Enter your signing PIN"),
    "pin.for_items": ("确认签署 {n} 项", "Confirm signing {n} item(s)"),
    "pin.confirm": ("确认签署", "Confirm and sign"),
    "pin.label": ("签名密码", "Signing PIN"),
    "pin.use_passkey": (
        "改用通行密钥（指纹/面容）确认",
        "Confirm with a passkey (fingerprint/face)",
    ),
    "pin.no_device_key": (
        "此手机上没有签名密钥，请重新认证",
        "This phone holds no signing key: enrol again",
    ),
    "unlock.title": ("解锁", "Unlock"),
    "unlock.hint": ("输入签名密码以继续", "Enter your signing PIN to continue"),
    "unlock.button": ("解锁", "Unlock"),
    "unlock.not_enrolled": (
        "此手机尚未完成实名认证。请从医院业务系统扫描认证二维码。",
        "This phone is not enrolled. Scan the enrolment QR code shown by the hospital system.",
    ),
    "history.empty": ("暂无记录", "No decided requests yet"),
    "settings.language": ("语言", "Language"),
    "settings.change_pin": ("修改签名密码", "Change signing PIN"),
    "settings.old_pin": ("原密码", "Current PIN"),
    "settings.new_pin": ("新密码", "New PIN"),
    "settings.new_pin_again": ("再次输入新密码", "New PIN again"),
    "settings.pin_changed": ("签名密码已修改", "Your signing PIN was changed"),
    "settings.pins_differ": ("两次输入的密码不一致", "The two PINs differ"),
    "settings.devices": ("已绑定的手机", "Enrolled phones"),
    "settings.passkeys": ("通行密钥", "Passkeys"),
    "settings.passkey_label": ("名称", "Name"),
    "settings.passkey_default": ("我的手机", "My phone"),
    "settings.passkey_add": ("添加通行密钥", "Add a passkey"),
    "settings.remove": ("删除", "Remove"),
    "settings.this_device": ("本机", "this phone"),
    "settings.unbind": ("解除绑定", "Unbind"),
    "settings.unbound": ("已解除", "unbound"),
    "settings.logout": ("退出登录", "Log out"),
    "settings.logged_out": ("已退出。", "You are logged out."),
    "enrol.title": ("实名认证", "Real-name authentication"),
    "enrol.for": ("{org}：{name}（{department}）", "{org}: {name} ({department})"),
    "enrol.send_code": ("发送短信验证码", "Text me a code"),
    "enrol.code_sent": ("验证码已发送至 {phone}", "A code was sent to {phone}"),
    "enrol.code": ("短信验证码", "SMS code"),
    "enrol.verify": ("验证", "Verify"),
    "enrol.national_id": ("身份证号", "National ID number"),
    "enrol.confirm_identity": ("确认身份", "Confirm identity"),
    "enrol.choose_pin": ("设置签名密码（6位数字）", "Choose a signing PIN (6 digits)"),
    "enrol.pin_again": ("再次输入", "Once more"),
    "enrol.finish": ("完成认证并申请证书", "Finish and get my certificate"),
    "enrol.device_key": (
        "签名密钥将在本手机上生成并保存，不可导出。",
        "Your signing key will be made and kept on this phone; it cannot be exported.",
    ),
    "enrol.done": (
        "认证完成，签名证书已签发。此手机已绑定。",
        "Done: your signing certificate is issued and this phone is enrolled.",
    ),
    "enrol.closed": ("此认证链接已失效", "This enrolment link is no longer valid"),
    "enrol.go_home": ("进入待签列表", "Go to my list"),
    "login.title": ("扫码登录", "Sign-in request"),
    "login.asks": ("{app} 请求以您的身份登录", "{app} asks to sign you in"),
    "login.workstation": ("工作站", "Workstation"),
    "login.approve": ("确认登录", "Approve"),
    "login.decline": ("拒绝", "Decline"),
    "login.approved": ("已确认登录", "Sign-in approved"),
    "login.declined": ("已拒绝登录", "Sign-in declined"),
    "login.expired": ("登录请求已过期", "This sign-in request has expired"),
    "login.used": ("登录请求已处理", "This sign-in request was already answered"),
    "verify.title": ("签名验证", "Signature verification"),
    "verify.subtitle": ("任何人均可核验医院电子签名", "Anyone can check a hospital signature here"),
    "verify.signature_file": (
        "签名文件（.p7s / CMS）或证据包（.zip）",
        "Signature file (.p7s / CMS) or evidence package (.zip)",
    ),
    "verify.data_file": ("被签名的原文（可选）", "The signed data (optional)"),
    "verify.privacy": (
        "文件仅用于本次核验，不会被保存。",
        "Files are used for this check only and are not kept.",
    ),
    "verify.button": ("验证", "Verify"),
    "verify.passed": ("验证通过", "Passed"),
    "verify.failed": ("验证失败", "Failed"),
    "verify.indeterminate": ("无法确定", "Indeterminate"),
    "verify.signer": ("签名人", "Signer"),
    "verify.certificate": ("证书序列号", "Certificate serial"),
    "verify.time": ("签名时间", "Signing time"),
    "verify.checks": ("逐项检查", "Checks"),
    "verify.request": ("签署请求", "Signature request"),
    "verify.digest": ("摘要值", "Digest"),
    "verify.not_found": ("未找到此签名，链接可能有误", "No such signature: the link may be wrong"),
    "verify.upload_other": ("验证其他文件", "Verify another file"),
    # Errors by their problem code: what a clinician can act on, in their language.
    "error.pin-wrong": (
        "签名密码错误，还可尝试 {remaining_tries} 次",
        "Wrong PIN: {remaining_tries} tries left",
    ),
    "error.pin-locked": (
        "签名密码已锁定，请稍后再试或联系信息科解锁",
        "Your PIN is locked: try later or ask IT to unlock it",
    ),
    "error.pin-not-set": ("尚未设置签名密码，请先完成实名认证", "No PIN is set: enrol first"),
    "error.otp-wrong": ("验证码错误", "Wrong code"),
    "error.otp-expired": ("验证码已过期，请重新发送", "The code expired: send a new one"),
    "error.otp-exhausted": (
        "错误次数过多，请重新发送验证码",
        "Too many wrong codes: send a new one",
    ),
    "error.otp-used": ("验证码已使用，请重新发送", "That code was used: send a new one"),
    "error.identity-check-failed": (
        "身份证号与医院登记的不一致",
        "The ID number does not match the hospital's record",
    ),
    "error.enrolment-closed": ("此认证链接已失效", "This enrolment link is no longer valid"),
    "error.enrolment-expired": (
        "此认证链接已过期，请重新扫码",
        "This enrolment link expired: scan a new QR code",
    ),
    "error.rate-limited": ("操作太频繁，请稍后再试", "Too many tries: wait a moment"),
    "error.intent-expired": ("确认已超时，请重新签署", "The confirmation timed out: sign again"),
    "error.intent-used": ("此确认已使用，请重新签署", "This confirmation was used: sign again"),
    "error.request-expired": ("签署请求已过期", "The request expired"),
    "error.request-not-pending": (
        "该内容已被处理（已签、已拒或已撤销）",
        "Already decided (signed, rejected or cancelled)",
    ),
    "error.signer-frozen": ("您的账户已冻结，请联系信息科", "Your account is frozen: contact IT"),
    "error.signer-certificate-revoked": (
        "您的签名证书已吊销，请重新认证",
        "Your certificate is revoked: enrol again",
    ),
    "error.signer-certificate-held": ("您的签名证书已暂停使用", "Your certificate is on hold"),
    "error.phone-session-invalid": ("请重新解锁", "Please unlock again"),
    "error.phone-device-unknown": (
        "此手机尚未绑定，请重新认证",
        "This phone is not enrolled: enrol again",
    ),
    "error.device-signature-invalid": (
        "手机签名校验失败，请重新签署",
        "The phone's signature did not verify: sign again",
    ),
    "error.device-key-invalid": (
        "无法使用此手机的密钥，请重新认证",
        "This phone's key cannot be used: enrol again",
    ),
    "error.passkey-unknown": ("此通行密钥未登记", "This passkey is not registered"),
    "error.passkey-revoked": ("此通行密钥已删除", "This passkey was removed"),
    "error.passkey-user-not-verified": ("需要指纹或面容验证", "Fingerprint or face check needed"),
    "error.passkey-cloned": ("通行密钥异常，已拒绝", "The passkey looks cloned: refused"),
    "error.passkey-duplicate": ("此通行密钥已登记", "This passkey is already registered"),
    "error.invalid-input": ("输入有误：{detail}", "Invalid input: {detail}"),
    "error.image-unreadable": (
        "无法读取此图片，请使用 JPEG 或 PNG 照片",
        "This image cannot be read: use a JPEG or PNG photo",
    ),
    "error.image-too-large": (
        "照片太大，请降低相机分辨率后重拍",
        "The photo is too large: lower the camera resolution and retake it",
    ),
    "error.image-too-small": ("照片太小，请靠近签名重拍", "The photo is too small: take it closer"),
    "error.image-too-dark": (
        "照片太暗：请在白纸上签名，在明亮处拍摄",
        "The photo is too dark: sign on white paper and photograph it in good light",
    ),
    "error.no-ink-found": (
        "照片中没有找到签名，请对准签名重拍",
        "No signature found in the photo: aim at the signature and retake it",
    ),
    "error.handwriting-not-found": (
        "此手写签名已不存在，请重新拍照",
        "That handwritten signature is gone: take a new photo",
    ),
    "error.handwriting-not-proposed": (
        "此手写签名已处理过",
        "That handwritten signature was already decided",
    ),
    "error.pdf-locked": (
        "此 PDF 已被认证签名锁定，不能再签署",
        "This PDF's certification allows no further signature",
    ),
    "error.field-already-signed": ("此签名处已有签名", "That signature field is already signed"),
    "error.documents-unavailable": ("本系统未开启 PDF 签署", "PDF signing is not available here"),
}


def translator(lang: str) -> Callable[..., str]:
    index = 1 if lang == "en" else 0

    def t(key: str, **values: object) -> str:
        pair = MESSAGES.get(key)
        text = key if pair is None else (pair[index] or pair[0])
        return text.format(**values) if values else text

    return t


def catalogue(lang: str, prefixes: tuple[str, ...]) -> dict[str, str]:
    """The messages a page's script needs (keys starting with one of ``prefixes``)."""
    index = 1 if lang == "en" else 0
    return {k: v[index] for k, v in MESSAGES.items() if k.startswith(prefixes)}

"""Script-based language detection for churn comments: en, ja, ko, uk, zh-Hans, zh-Hant.

No model and no dictionary: the writing system decides. Kana (Hiragana/Katakana) means Japanese
(Japanese text nearly always carries kana; Chinese never does), Hangul means Korean, Han characters
without kana or Hangul mean Chinese, Cyrillic means Ukrainian (the only Cyrillic language winback
serves), Latin means English. Chinese is split into simplified and traditional by counting
characters that exist in only one of the two scripts (:data:`SIMPLIFIED_ONLY` /
:data:`TRADITIONAL_ONLY`, pairs of the same word written both ways); a text with none of them is
reported as ``zh-Hans``, the more common written form.
"""

from __future__ import annotations

import re

# Pairs (simplified, traditional) of common characters that differ between the scripts. Characters
# used in both scripts with another meaning (后/後, 里/裡, 台/臺, 划/劃, 只/隻 ...) are left out.
_SIMPLIFIED_TRADITIONAL_PAIRS = (
    "们們 这這 说說 时時 个個 来來 为為 会會 对對 发發 还還 没沒 买買 卖賣 贵貴 价價 务務 应應 费費 钱錢 经經 过過 "
    "题題 问問 门門 间間 关關 开開 办辦 单單 动動 报報 帮幫 听聽 觉覺 变變 让讓 请請 谢謝 设設 计計 订訂 认認 记記 "
    "讯訊 试試 话話 该該 语語 误誤 调調 谈談 质質 购購 货貨 转轉 软軟 较較 输輸 边邊 达達 运運 进進 远遠 选選 递遞 "
    "错錯 长長 队隊 难難 页頁 项項 顾顧 领領 频頻 风風 体體 么麼 乐樂 习習 书書 产產 亲親 从從 优優 众眾 传傳 区區 "
    "华華 协協 卫衛 历歷 压壓 厂廠 参參 双雙 号號 员員 响響 团團 园園 图圖 场場 块塊 坏壞 处處 备備 复複 头頭 实實 "
    "宝寶 审審 将將 导導 层層 岁歲 币幣 带帶 帐帳 广廣 库庫 张張 归歸 录錄 态態 总總 惯慣 战戰 护護 担擔 换換 据據 "
    "损損 数數 断斷 无無 旧舊 显顯 术術 机機 权權 条條 杂雜 极極 构構 标標 样樣 档檔 检檢 欢歡 气氣 汇匯 况況 减減 "
    "满滿 灵靈 点點 热熱 状狀 独獨 现現 电電 画畫 盘盤 码碼 确確 离離 种種 积積 称稱 稳穩 简簡 类類 级級 约約 线線 "
    "练練 组組 细細 终終 结結 给給 统統 续續 维維 编編 网網 联聯 职職 脑腦 节節 营營 获獲 见見 观觀 规規 视視 览覽 "
    "讨討 议議 证證 评評 识識 译譯 询詢 详詳 读讀 课課 负負 账賬 财財 资資 赠贈 车車 载載 辑輯 连連 适適 邮郵 链鏈 "
    "销銷 锁鎖 键鍵 闭閉 闻聞 阅閱 际際 险險 随隨 须須 预預 额額 飞飛 饭飯 馆館 马馬 验驗 鱼魚 龙龍 户戶 闪閃 丢丟 "
    "纸紙 红紅 绩績 赶趕 迟遲 邻鄰 钟鐘 铁鐵 银銀 阶階 隐隱 顺順 饮飲 鸡雞 仪儀 乱亂 缴繳 笔筆 两兩 礼禮 蛮蠻 装裝 "
    "戏戲 决決 国國 写寫 义義 农農 业業 丽麗 举舉 侧側 债債 储儲 儿兒 兴興 养養 册冊 军軍 冻凍 净淨 击擊 则則 刚剛 "
    "创創 删刪 别別 剧劇 劝勸 劳勞 势勢 医醫 厅廳 县縣 叹嘆 吓嚇 吗嗎 启啟 围圍 圆圓 圣聖 坚堅 墙牆 声聲 够夠 夺奪 "
    "奖獎 妈媽 学學 宁寧 宫宮 宽寬 寻尋 尔爾 尽盡 届屆 属屬 岛島 师師 废廢 异異 弃棄 当當 忧憂 怀懷 恶惡 惊驚 愿願 "
    "执執 扩擴 扫掃 扬揚 扰擾 抢搶 择擇 挡擋 挤擠 挥揮 摄攝 摇搖 敌敵 晒曬 晓曉 暂暫 杀殺 杨楊 枪槍 柜櫃 栏欄 树樹 "
    "桥橋 梦夢 楼樓 欧歐 毕畢 毁毀 汤湯 沟溝 泪淚 洁潔 测測 济濟 浏瀏 润潤 涨漲 渐漸 湾灣 湿濕 滚滾 灭滅 灯燈 灾災 "
    "烂爛 爱愛 环環 琐瑣 畅暢 盖蓋 监監 矿礦 础礎 穷窮 竞競 筑築 签簽 粮糧 紧緊 纯純 纳納 纷紛 织織 绕繞 绘繪 络絡 "
    "绝絕 继繼 绪緒 综綜 绿綠 缓緩 缩縮 罗羅 罚罰 肤膚 胜勝 脱脫 脚腳 艺藝 药藥 蓝藍 虑慮 虽雖 补補 触觸 训訓 讲講 "
    "许許 论論 访訪 诉訴 词詞 诚誠 谁誰 谓謂 贝貝 责責 败敗 贴貼 贷貸 赔賠 赚賺 赛賽 趋趨 践踐 轮輪 轻輕 辅輔 辆輛 "
    "辞辭 违違 逻邏 遗遺 释釋 针針 钢鋼 铺鋪 锅鍋 闲閒 闷悶 闹鬧 阵陣 阳陽 阴陰 陆陸 陈陳 顶頂 顿頓 颜顏 饰飾 饱飽 "
    "饿餓 驱驅 驾駕 骗騙 鸟鳥 麦麥 黄黃 齐齊 齿齒 专專 东東 万萬 与與 乡鄉 亚亞 亿億 仅僅 仓倉 伤傷"
)
# Traditional characters whose simplified form is also a traditional character of its own (裡/里, 後/后).
_TRADITIONAL_ONLY_SINGLES = "裡後麵髮鬆隻臺劃錶"
SIMPLIFIED_ONLY = frozenset(pair[0] for pair in _SIMPLIFIED_TRADITIONAL_PAIRS.split())
TRADITIONAL_ONLY = frozenset(pair[1] for pair in _SIMPLIFIED_TRADITIONAL_PAIRS.split()) | frozenset(
    _TRADITIONAL_ONLY_SINGLES)

LANGUAGES = ("en", "ja", "ko", "uk", "zh-Hans", "zh-Hant")

_KANA = re.compile("[\u3040-\u30ff\u31f0-\u31ff\uff66-\uff9d]")
_HANGUL = re.compile("[\uac00-\ud7a3\u1100-\u11ff\u3130-\u318f]")
_HAN = re.compile("[\u4e00-\u9fff\u3400-\u4dbf\uf900-\ufaff\U00020000-\U0002fa1f]")
_CYRILLIC = re.compile("[\u0400-\u052f]")
_LATIN = re.compile("[A-Za-z\u00c0-\u024f]")
_SIMPLIFIED = re.compile("[" + "".join(sorted(SIMPLIFIED_ONLY)) + "]")
_TRADITIONAL = re.compile("[" + "".join(sorted(TRADITIONAL_ONLY)) + "]")
_SCAN_CHARS = 4000


def detect_language(text: str | None) -> str | None:
    """The language of ``text`` from its script, or None when it has no letters at all.

    Kana -> ``ja``; Hangul -> ``ko``; Han without kana/Hangul -> ``zh-Hant`` when traditional-only
    characters outnumber simplified-only ones, else ``zh-Hans``; otherwise ``uk`` when at least
    a quarter of the letters are Cyrillic (Ukrainian comments often name English products),
    else ``en``. English product names inside CJK text do not change the answer. Only the first
    4,000 characters are looked at.
    """
    if not text:
        return None
    text = text[:_SCAN_CHARS]
    if _KANA.search(text):
        return "ja"
    if _HANGUL.search(text):
        return "ko"
    if _HAN.search(text):
        return chinese_script(text)
    cyrillic = len(_CYRILLIC.findall(text))
    latin = len(_LATIN.findall(text))
    if cyrillic or latin:
        return "uk" if 3 * cyrillic >= latin else "en"
    return None


def chinese_script(text: str) -> str:
    """``zh-Hant`` when ``text`` has more traditional-only than simplified-only characters, else ``zh-Hans``."""
    simplified = len(_SIMPLIFIED.findall(text))
    traditional = len(_TRADITIONAL.findall(text))
    return "zh-Hant" if traditional > simplified else "zh-Hans"
